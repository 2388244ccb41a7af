"""Package layout: the repository's top-level folders install as subpackages of the one
``conveyor`` namespace (``streams/`` → ``conveyor.streams``, …), so the wheel puts nothing
but ``conveyor`` into site-packages. Everything else is in ``pyproject.toml``; this file only
computes the package list, so a new subpackage (a processor's folder) needs no edit here."""
from setuptools import find_packages, setup

FOLDERS = ("streams", "processors", "sinks", "dlq", "schemas", "tools", "review")

packages = [f"conveyor.{folder}" for folder in FOLDERS]
packages += [f"conveyor.{folder}.{sub}" for folder in FOLDERS for sub in find_packages(folder)]
setup(packages=packages, package_dir={f"conveyor.{folder}": folder for folder in FOLDERS})
