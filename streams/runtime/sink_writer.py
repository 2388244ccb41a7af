"""Writing a batch's rows to a sink, with backpressure: while the sink refuses
(:class:`~conveyor.sinks.base.SinkBackpressureError`), the stage's partitions are paused and the
consumer keeps polling (so the group does not evict it) until ``retry_after`` passes; nothing
is dropped, and the batch is committed only after the flush succeeded."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Message

from conveyor.sinks.base import Sink, SinkBackpressureError
from conveyor.streams.runtime.health import Heartbeat
from conveyor.streams.runtime.pausing import PauseControl
from conveyor.streams.telemetry import metrics

log = logging.getLogger(__name__)


class StoppedWhileSinkUnavailable(RuntimeError):
    """Asked to stop while the sink kept refusing the batch: it stays uncommitted and is
    delivered again after the restart."""


class SinkWriter:
    """Writes and flushes one stage's rows to ``sink``.

    Args:
        sink: the stage's sink.
        name: the stage (logs, metrics).
        pauser: pauses and resumes the stage's partitions while the sink refuses.
        heartbeat: beaten while waiting (a slow sink is progress, not a stuck loop).
        stop_event: set when the stage is asked to stop.
    """

    def __init__(self, sink: Sink, name: str, pauser: PauseControl, heartbeat: Heartbeat,
                 stop_event: threading.Event):
        self.sink, self.name, self.pauser, self.heartbeat, self.stop_event = sink, name, pauser, heartbeat, stop_event

    def write(self, rows: list[dict[str, Any]], sources: list[Message]) -> list[tuple[Message, BaseException]]:
        """Write and flush ``rows``. Returns failures to route: a permanent sink error (not
        backpressure) fails every input that produced rows in this batch and discards the
        buffered rows, so one rejected row cannot block the partition forever.

        Raises:
            StoppedWhileSinkUnavailable: stopped while the sink stayed unavailable.
        """
        sink = self.sink
        try:
            if rows:
                try:
                    sink.write(rows)
                except SinkBackpressureError:
                    pass  # the rows are buffered (Sink contract); the flush below waits for the sink
            self.flush()
        except StoppedWhileSinkUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the sink rejected the batch permanently
            log.error("%s: sink rejected the batch (%s: %s); failing its %d inputs",
                      self.name, type(exc).__name__, exc, len(sources))
            sink.discard()
            self.pauser.resume()
            return [(msg, exc) for msg in sources]
        return []

    STOP_FLUSH_ATTEMPTS = 3
    """Flush attempts (each at most 2 s apart) still made after a stop request while the sink
    is unavailable: a shutdown waits at most a few seconds, then leaves the batch uncommitted
    for redelivery. A project choice, not taken from elsewhere."""

    def flush(self) -> None:
        """Flush the sink; on backpressure pause partitions and keep polling until it drains.

        Raises:
            StoppedWhileSinkUnavailable: stopped while the sink stayed unavailable; the batch
                is not committed and will be redelivered.
        """
        sink = self.sink
        attempts_after_stop = 0
        while True:
            self.heartbeat.beat()  # waiting for a slow sink is progress, not a stuck loop
            try:
                sink.flush()
                break
            except SinkBackpressureError as exc:
                metrics.BACKPRESSURE.labels(self.name).inc()
                log.warning("%s: sink backpressure (%s); pausing for %.1fs", self.name, exc, exc.retry_after)
                self.pauser.pause()
                if self.stop_event.is_set():
                    attempts_after_stop += 1
                    if attempts_after_stop > self.STOP_FLUSH_ATTEMPTS:
                        raise StoppedWhileSinkUnavailable(
                            f"{self.name}: stopped while the sink was unavailable") from exc
                    time.sleep(min(exc.retry_after, 2.0))
                else:
                    self.pauser.wait(exc.retry_after, self.stop_event)
        self.pauser.resume()
