"""The embed step on Faust (faust-streaming, bench-only).

``python -m conveyor.tools.bench.peers.faust_app NAMESPACE GROUP`` consumes ``<ns>.texts`` and
produces ``<ns>.embedded`` with one agent that takes up to 32 values at a time
(``stream.take(32, within=0.01)``: Faust's batching idiom) — Faust's default guarantee
(at-least-once, commit every 2.8 s). Stops on SIGTERM.
"""
from __future__ import annotations

import dataclasses
import sys


def main(argv: list[str] | None = None) -> None:
    """Run the worker until it is stopped (SIGTERM/SIGINT)."""
    import faust

    from conveyor.streams.config.settings import Settings
    from conveyor.tools.bench.peers.step import EmbedStep

    namespace, group = (argv if argv is not None else sys.argv[1:])[:2]
    settings = dataclasses.replace(Settings.from_env(), namespace=namespace)
    step = EmbedStep(settings)
    app = faust.App(group, broker=[f"kafka://{h}" for h in settings.bootstrap_servers.split(",")],
                    store="memory://", datadir=str(settings.home / "faust" / group), web_enabled=False,
                    topic_disable_leader=True, value_serializer="raw", key_serializer="raw",
                    consumer_auto_offset_reset="earliest")
    source = app.topic(step.source, value_serializer="raw", key_serializer="raw")
    sink = app.topic(step.sink, value_serializer="raw", key_serializer="raw")

    @app.agent(source)
    async def embed(stream):
        async for values in stream.take(32, within=0.01):
            for key, value in step.batch(values):
                await sink.send(key=key, value=value)

    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
