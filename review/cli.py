"""``conveyor review``: serve the review app of the namespace until interrupted."""
from __future__ import annotations

import time

import click


@click.command("review")
@click.option("--host", default=None, help="Address to bind (default CONVEYOR_REVIEW_ADDR or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default CONVEYOR_REVIEW_PORT or 8088).")
@click.option("--ready-timeout", type=float, default=300.0, show_default=True,
              help="Seconds to read the topics to their end before serving.")
def review(host: str | None, port: int | None, ready_timeout: float) -> None:
    """Serve the review queue of CONVEYOR_NAMESPACE: reviewers (CONVEYOR_REVIEW_USERS, HTTP
    basic auth) accept or correct predictions routed to review; each decision goes to the
    feedback topic exactly once."""
    import dataclasses

    from conveyor.review.app import serving
    from conveyor.review.settings import ReviewSettings, ReviewSettingsError
    from conveyor.streams.cli.common import kafka_settings
    from conveyor.streams.cli.main import setup_logging
    from conveyor.streams.kafka.admin import create_topics

    try:
        rs = ReviewSettings.from_env()
    except ReviewSettingsError as exc:
        raise click.ClickException(str(exc)) from None
    rs = dataclasses.replace(rs, addr=host or rs.addr, port=port if port is not None else rs.port)
    settings = kafka_settings()
    setup_logging(settings)
    create_topics(settings)
    try:
        with serving(settings, rs, ready_timeout=ready_timeout) as url:
            click.echo(f"review queue of {settings.namespace}: {url}/ (reviewers: {', '.join(u for u, _ in rs.users)})",
                       err=True)
            while True:
                time.sleep(3600)
    except (TimeoutError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
