"""The embed step on Quix Streams (bench-only; runs in its own venv, see :mod:`.venvs`).

``python -m conveyor.tools.bench.peers.quix_app NAMESPACE GROUP GUARANTEE`` consumes
``<ns>.texts`` and produces ``<ns>.embedded`` with a Quix ``Application`` at its defaults
(commit interval 5 s), ``processing_guarantee`` ``at-least-once`` or ``exactly-once``; one record
at a time through ``StreamingDataFrame.apply`` (Quix's model). Stops on SIGTERM.
"""
from __future__ import annotations

import dataclasses
import sys


def main(argv: list[str] | None = None) -> None:
    """Run the app until it is stopped (SIGTERM/SIGINT)."""
    from quixstreams import Application

    from conveyor.streams.config.settings import Settings
    from conveyor.tools.bench.peers.step import EmbedStep

    namespace, group, guarantee = (argv if argv is not None else sys.argv[1:])[:3]
    settings = dataclasses.replace(Settings.from_env(), namespace=namespace)
    step = EmbedStep(settings)
    app = Application(broker_address=settings.bootstrap_servers, consumer_group=group,
                      auto_offset_reset="earliest", processing_guarantee=guarantee,
                      auto_create_topics=False, loglevel="WARNING")
    source = app.topic(step.source, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(step.sink, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(source).apply(step.one)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
