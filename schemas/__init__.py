"""The Avro schemas (``*.avsc``), the single source of truth for every record; shipped as
package data and read with :func:`importlib.resources.files`."""
