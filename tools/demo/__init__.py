"""``conveyor demo``: the main job on the shipped demo corpus (see NOTICE for sources)."""
from conveyor.tools.demo.run import run_demo

__all__ = ["run_demo"]
