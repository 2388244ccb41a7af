"""Offline tooling, apart from the runtime: the local stack, the demo, benchmarks,
evaluation, model training and drift validation.

Nothing in ``conveyor.streams``, ``conveyor.processors``, ``conveyor.sinks`` or
``conveyor.dlq`` imports this package (an import-linter contract checks it), so a runtime
image can leave it out; its ``conveyor`` subcommands are registered through the
``conveyor.commands`` entry point group.
"""
