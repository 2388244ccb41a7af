"""Sinks: destinations outside Kafka, behind one small contract (``write``/``flush``)."""
