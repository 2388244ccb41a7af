"""Where the CPU goes: CPU seconds of named processes over an interval, from ``/proc``.

``/proc/<pid>/stat`` fields 14–17 (utime, stime, cutime, cstime) are in clock ticks
(``os.sysconf("SC_CLK_TCK")``); see proc(5). A process that has exited counts as 0 from then on.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU seconds used so far by ``pid`` and its waited-for children, or ``None``
    when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; field 3 is fields[0]
    return sum(int(f) for f in fields[11:15]) / _TICK


def status_mib(pid: int, key: str) -> Optional[float]:
    """The ``key`` line (e.g. ``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status`` in MiB, or ``None``
    when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> Optional[float]:
    """Current resident set size (``VmRSS``) of ``pid`` in MiB, or ``None`` when it is gone."""
    return status_mib(pid, "VmRSS")


class CpuMeter:
    """CPU seconds of ``{name: pid}`` between :meth:`start` and :meth:`stop`.

    ``stop(items)`` returns ``{name: milliseconds of CPU per item}`` plus ``total`` and
    ``cores_busy`` (CPU seconds over wall seconds: 2.0 = both cores of this machine saturated).
    """

    def __init__(self, pids: Mapping[str, int]):
        self.pids = dict(pids)
        self.pids["bench (producer + watcher)"] = os.getpid()
        self._t0: dict[str, float] = {}
        self._wall0 = 0.0

    def start(self) -> None:
        """Take the first reading."""
        import time

        self._wall0 = time.monotonic()
        self._t0 = {n: cpu_seconds(p) or 0.0 for n, p in self.pids.items()}

    def stop(self, items: int) -> dict[str, float | None]:
        """CPU milliseconds per item of each process since :meth:`start`.

        Raises:
            ValueError: ``items`` is not positive.
        """
        import time

        if items <= 0:
            raise ValueError("items must be positive")
        wall = time.monotonic() - self._wall0
        used = {n: max(0.0, (cpu_seconds(p) or self._t0[n]) - self._t0[n]) for n, p in self.pids.items()}
        out: dict[str, float | None] = {n: round(s * 1000 / items, 2) for n, s in used.items()}
        out["total"] = round(sum(used.values()) * 1000 / items, 2)
        out["cores_busy"] = round(sum(used.values()) / wall, 2) if wall > 0 else None
        return out


def commit_totals(ports: Mapping[str, int]) -> dict[str, tuple[float, float]]:
    """``{process: (seconds, commits)}`` of ``conveyor_commit_seconds`` (sum and count over its
    processors) scraped from each process' ``/metrics`` on ``127.0.0.1:<port>``; a process that
    does not answer is left out."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for name, port in ports.items():
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        total = count = 0.0
        for family in text_string_to_metric_families(text):
            if family.name == "conveyor_commit_seconds":
                for s in family.samples:
                    total += s.value if s.name.endswith("_sum") else 0.0
                    count += s.value if s.name.endswith("_count") else 0.0
        out[name] = (total, count)
    return out


def commit_cost(before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]],
                seconds: float) -> dict[str, dict]:
    """Per process between two :func:`commit_totals`: ``mean_ms`` per commit and ``per_s``
    (commits per second over ``seconds``)."""
    out = {}
    for name, (total, count) in after.items():
        t0, c0 = before.get(name, (0.0, 0.0))
        n = count - c0
        out[name] = {"mean_ms": round((total - t0) * 1000 / n, 2) if n else None,
                     "per_s": round(n / seconds, 2) if seconds > 0 else None}
    return out
