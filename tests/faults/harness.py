"""The fault-suite harness: run the whole pipeline on real inputs while a fault happens, then
account for every input.

:func:`run_scenario` creates the namespace's topics, starts every runner processor as its own
process under a :class:`conveyor.streams.runtime.supervisor.Supervisor` (``extract``, ``embed``, ``index``,
``classify``; the drift monitor is left out — it only observes and would take a core),
produces the inputs evenly over ``produce_seconds`` while the fault injector runs in another
thread, reads results until every input has one, waits for consumer lag to reach zero, stops
the processors and checks Milvus. It returns an :class:`Outcome` whose ``figures`` are printed
as one JSON line and appended to the report file; :func:`problems` lists what is wrong.

Figures (counts are input ids unless said otherwise; times in seconds):
``inputs``, ``bad_inputs`` (known-bad: must be dead letters), ``results`` (prediction and
dead-letter *records*), ``predictions``, ``dead_letters`` (ids), ``duplicates`` (ids with more
than one result), ``lost`` (ids with none), ``unexpected_dead_letters`` (good ids dead-lettered),
``bad_with_prediction``, ``side_dead_letters`` (index dead letters), ``unknown_keys``,
``milvus_rows`` / ``expected_rows`` / ``missing_rows`` / ``extra_rows`` / ``duplicate_rows``,
``milvus_error`` (Milvus unreadable after the run), ``lag`` (records left unconsumed),
``stalled`` (no progress for ``stall_timeout`` s after the fault), ``recovery_time_s`` (from
the end of the fault, or from the last input produced if later, until every input had its
result), ``completion_s`` (from the first input produced until every input had its result),
``lag_wait_s``, ``wall_time_s``,
``restarts`` (distinct pids per process group - 1), ``dead_at_end`` (groups not running when
the run ended), ``stacks_dumped`` (groups whose Python stacks were dumped because the run did
not drain), ``exit_codes`` (of the SIGTERM shutdown), ``retried`` (records in each retry topic),
``fault`` (what the injector did), ``old_inputs`` (ids stamped older than retention),
``retention_check_ms`` (the broker's ``log.retention.check.interval.ms``: how soon a record
stamped with an old input's time would have been deleted).
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.runtime.supervisor import Supervisor, process_groups
from conveyor.streams.topology.pipeline import SOURCES
from conveyor.tools.accounting import Ledger
from tests.faults.checks import consumer_lag, expected_chunk_ids, milvus_rows, retention_check_ms, retry_keys
from tests.faults.faults import FaultContext, FaultLog, run_fault
from tests.faults.inputs import InputSet, ProduceLog, produce_paced
from tests.faults.ledger import LedgerReader
from tests.integration.helpers import keep_forever

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBRDKAFKA_LOG = re.compile(r"^%\d\|")
"""librdkafka's own log lines (``%3|<time>|FAIL|...``), written straight to stderr."""
REPORT_ENV = "CONVEYOR_FAULT_REPORT"
DEFAULT_REPORT = REPO_ROOT / "build" / "fault-report.json"


@dataclass
class Scenario:
    """One fault-suite run.

    ``fault(ctx, log)`` is a :mod:`tests.faults.faults` injector; ``timeout`` bounds the wait
    for results (from the first input produced), ``lag_timeout`` the wait for zero lag after;
    ``settle`` seconds are read after the last first result to catch late duplicates.
    """

    name: str
    settings: Settings
    inputs: InputSet
    fault: Callable[[FaultContext, FaultLog], None]
    log_dir: Path
    seed: int = 0
    produce_seconds: float = 60.0
    timeout: float = 480.0
    lag_timeout: float = 120.0
    settle: float = 5.0
    stall_timeout: float = 180.0
    """Stop waiting early when no input got its first result for this long after the fault
    and the production ended (a stuck pipeline fails in minutes, not at ``timeout``)."""
    notes: dict[str, Any] = field(default_factory=dict)
    """Scenario parameters copied into the figures (e.g. the transient failure rate)."""
    instances: int = 1
    """Processes per process group (2: every processor runs twice, sharing its consumer group)."""


@dataclass
class Outcome:
    """What a run produced: the figures, the ledger, Milvus keys, lag, fault and process logs."""

    scenario: Scenario
    figures: dict[str, Any]
    ledger: Ledger
    expected_rows: set[str] = field(default_factory=set)
    stored_rows: list[str] = field(default_factory=list)
    lag: dict[str, int] = field(default_factory=dict)
    fault_log: FaultLog = field(default_factory=FaultLog)
    produce_log: ProduceLog = field(default_factory=ProduceLog)
    consumer_errors: list[str] = field(default_factory=list)
    retried: dict[str, Counter] = field(default_factory=dict)
    """Keys in each processor's retry topic (``{processor: Counter(key -> records)}``)."""

    def log_tails(self, lines: int = 15) -> str:
        """The last ``lines`` lines of every processor log, librdkafka's own log lines left
        out (a broker outage fills the logs with connection failures), for failure messages."""
        out = []
        for path in sorted(self.scenario.log_dir.glob("*.log")):
            text = [ln for ln in path.read_text(errors="replace").splitlines() if not LIBRDKAFKA_LOG.match(ln)]
            out.append(f"--- {path}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


class _Run:
    """State of one running scenario: the supervisor, the result reader, the producer and fault
    threads, and what was observed along the way (pids per group, lag, stall)."""

    def __init__(self, sc: Scenario):
        self.sc = sc
        groups = [g for g in process_groups(sc.settings, with_drift=False, builtin_only=True)
                  for _ in range(sc.instances)]
        self.supervisor = Supervisor(sc.settings, groups, log_dir=sc.log_dir, grace=30)
        self.reader = LedgerReader(sc.settings, sc.inputs.ids)
        self.stop = threading.Event()
        self.produce_log, self.fault_log = ProduceLog(), FaultLog()
        self.threads: list[threading.Thread] = []
        self.pids: dict[str, set[int]] = {}
        self.lag: dict[str, int] = {}
        self.lag_wait = 0.0
        self.stalled = False
        self.dead_at_end: list[str] = []
        self.dumped: list[str] = []
        self.t0 = time.monotonic()

    def start(self) -> None:
        """Start the processors, then the paced producer and the fault injector."""
        self.supervisor.start()
        self.t0 = time.monotonic()
        ctx = FaultContext(self.supervisor, self.t0, random.Random(self.sc.seed), self.stop)
        produce = {"duration": self.sc.produce_seconds, "seed": self.sc.seed, "log": self.produce_log,
                   "stop": self.stop}
        self.threads = [
            threading.Thread(target=produce_paced, name="fault-produce", daemon=True,
                             args=(self.sc.settings, self.sc.inputs), kwargs=produce),
            threading.Thread(target=run_fault, name="fault-inject", daemon=True,
                             args=(self.sc.fault, ctx, self.fault_log)),
        ]
        for t in self.threads:
            t.start()

    def tick(self, seconds: float) -> int:
        """Read results for ``seconds``, restart crashed children, note pids; return new results."""
        gained = self.reader.poll(seconds)
        self.supervisor.check()
        for c in self.supervisor.children:
            if c.proc is not None:
                self.pids.setdefault("-".join(c.group), set()).add(c.proc.pid)
        return gained

    def wait_for_results(self) -> None:
        """Until every input has a result and producer and fault are done; or the producer failed,
        no progress for ``stall_timeout`` s after both were done (``stalled``), or ``timeout``."""
        deadline = self.t0 + self.sc.timeout
        progress_at = time.monotonic()
        while time.monotonic() < deadline and self.produce_log.error is None:
            if self.tick(0.5):
                progress_at = time.monotonic()
            if not (self.produce_log.done.is_set() and self.fault_log.done.is_set()):
                continue
            if self.reader.complete:
                return
            if time.monotonic() - max(progress_at, self.fault_log.ended or self.t0) > self.sc.stall_timeout:
                self.stalled = True
                return

    def settle_and_drain(self) -> None:
        """Read ``settle`` more seconds (late duplicates), then wait for zero consumer lag (not
        when stalled); if the pipeline did not drain, dump the processors' stacks."""
        settle_until = time.monotonic() + self.sc.settle
        while time.monotonic() < settle_until:
            self.tick(0.5)
        started = time.monotonic()
        while True:
            self.lag = consumer_lag(self.sc.settings)
            self.lag_wait = time.monotonic() - started
            if not self.lag or self.lag_wait > self.sc.lag_timeout or self.stalled:
                break
            self.tick(3.0)
        self.tick(1.0)
        self.dead_at_end = [self.supervisor.child_name(c) for c in self.supervisor.children
                            if c.proc is None or c.proc.poll() is not None]
        if self.lag or not self.reader.complete:
            self.dumped = dump_stacks(self.supervisor)

    def close(self) -> dict[str, int]:
        """Stop the injector (it restores what it broke) and the producer, then the processors
        (SIGTERM; returns their exit codes), then the reader."""
        self.stop.set()
        for t in self.threads:
            t.join(120)
        try:
            return self.supervisor.stop()
        finally:
            self.reader.close()


def run_scenario(sc: Scenario) -> Outcome:
    """Run ``sc`` (see the module docstring) and return its :class:`Outcome`; never raises for
    what it observes (that is for :func:`problems`), only for a broken harness or stack."""
    started = time.monotonic()
    create_topics(sc.settings)
    keep_forever(sc.settings, *(src.role for src in SOURCES))  # the old inputs themselves: only what Conveyor writes is tested
    run = _Run(sc)
    try:
        run.start()
        run.wait_for_results()
        run.settle_and_drain()
    finally:
        codes = run.close()
    settings = sc.settings
    chunks, embedded_records = expected_chunk_ids(settings, sc.inputs.ids)
    expected_rows = set().union(*chunks.values()) if chunks else set()
    stored, total, milvus_error = [], 0, None
    try:
        stored, total = milvus_rows(settings.milvus_uri, settings.milvus_collection, sc.inputs.ids,
                                    token=settings.milvus_token_value())
    except Exception as exc:  # noqa: BLE001 - a finding, reported with the other figures
        milvus_error = f"{type(exc).__name__}: {exc}"
    outcome = Outcome(sc, {}, run.reader.ledger, expected_rows, stored, run.lag, run.fault_log, run.produce_log,
                      list(run.reader.errors), retry_keys(settings))
    outcome.figures = figures(outcome, t0=run.t0, wall=time.monotonic() - started, lag_wait=run.lag_wait,
                              codes=codes, pids=run.pids, dead_at_end=run.dead_at_end, dumped=run.dumped,
                              stalled=run.stalled, milvus_total=total, milvus_error=milvus_error,
                              embedded_records=embedded_records, embedded_ids=set(chunks))
    return outcome


def dump_stacks(supervisor: Supervisor, wait: float = 10.0) -> list[str]:
    """SIGABRT every running child so that Python's faulthandler (``PYTHONFAULTHANDLER=1`` in
    the children's environment) writes every thread's stack into its log: the evidence of
    where a processor that stopped making progress is stuck. Returns the groups signalled."""
    signalled = []
    for c in supervisor.children:
        if c.proc is not None and c.proc.poll() is None:
            c.proc.send_signal(signal.SIGABRT)
            signalled.append(supervisor.child_name(c))
    deadline = time.monotonic() + wait
    for c in supervisor.children:
        if c.proc is not None:
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - Supervisor.stop kills what is left
                pass
    return signalled


def figures(o: Outcome, *, t0: float, wall: float, lag_wait: float, codes: dict, pids: dict[str, set[int]],
            dead_at_end: list[str], dumped: list[str], stalled: bool, milvus_total: int,
            milvus_error: Optional[str], embedded_records: int, embedded_ids: set[str]) -> dict[str, Any]:
    """The figures dict of a run (see the module docstring)."""
    led, inputs = o.ledger, o.scenario.inputs
    dead, preds = set(led.dead_letters), set(led.predictions)
    completed = max(led.first_seen.values()) if not led.missing and led.first_seen else None
    fault_end = o.fault_log.ended or t0
    base = max(fault_end, o.produce_log.finished or t0)
    kills = [e for e in o.fault_log.events if e.get("action") == "SIGKILL"]
    return {
        "scenario": o.scenario.name, "namespace": o.scenario.settings.namespace, "seed": o.scenario.seed,
        **o.scenario.notes,
        "inputs": len(inputs.ids), "produced": o.produce_log.produced, "bad_inputs": len(inputs.bad_ids),
        "results": sum(map(len, led.predictions.values())) + sum(map(len, led.dead_letters.values())),
        "predictions": len(preds), "dead_letters": len(dead),
        "duplicates": len(led.duplicated), "lost": len(led.missing),
        "unexpected_dead_letters": len(dead - inputs.bad_ids),
        "bad_with_prediction": len(preds & inputs.bad_ids),
        "side_dead_letters": sum(map(len, led.side_dead_letters.values())), "unknown_keys": led.unexpected,
        "embedded_records": embedded_records, "predicted_without_embedding": len(preds - embedded_ids),
        "milvus_rows": len(o.stored_rows), "expected_rows": len(o.expected_rows),
        "missing_rows": len(o.expected_rows - set(o.stored_rows)),
        "extra_rows": len(set(o.stored_rows) - o.expected_rows),
        "duplicate_rows": len(o.stored_rows) - len(set(o.stored_rows)), "milvus_total_rows": milvus_total,
        "milvus_error": milvus_error,
        "lag": sum(o.lag.values()), "lag_wait_s": round(lag_wait, 1),
        "recovery_time_s": round(max(0.0, completed - base), 1) if completed else None,
        "completion_s": round(completed - (o.produce_log.started or t0), 1) if completed else None,
        "fault_window_s": [round((o.fault_log.started or t0) - t0, 1), round(fault_end - t0, 1)],
        "wall_time_s": round(wall, 1), "stalled": stalled,
        "kills": len(kills),
        "restarts": {g: len(p | {e["pid"] for e in kills if e["group"] == g}) - 1 for g, p in sorted(pids.items())},
        "dead_at_end": dead_at_end,
        "stacks_dumped": dumped,
        "exit_codes": codes, "consumer_errors": len(o.consumer_errors),
        "retried": {p: sum(c.values()) for p, c in o.retried.items()},
        "fault": o.fault_log.events if not kills else [f"{e['t']}s {e['group']}" for e in kills],
        "fault_error": repr(o.fault_log.error) if o.fault_log.error else None,
        "old_inputs": sorted(i.input_id for i in inputs.items if i.timestamp is not None),
        "retention_check_ms": retention_check_ms(o.scenario.settings),
    }


def problems(o: Outcome) -> list[str]:
    """Every violated expectation of a run, as readable lines (empty: the run is clean)."""
    f, led, inputs = o.figures, o.ledger, o.scenario.inputs
    desc = inputs.describe
    out = []
    if f["fault_error"]:
        out.append(f"fault injector failed: {f['fault_error']}")
    if o.produce_log.error is not None:
        out.append(f"producing the inputs failed: {o.produce_log.error!r}"[:400])
    if f["produced"] != f["inputs"]:
        out.append(f"produced {f['produced']} of {f['inputs']} inputs")
    if led.missing:
        out.append(f"lost {len(led.missing)}: {sorted(led.missing)[:10]}")
    if led.duplicated:
        sample = {i: len(led.predictions.get(i, [])) + len(led.dead_letters.get(i, []))
                  for i in sorted(led.duplicated)[:10]}
        out.append(f"{len(led.duplicated)} inputs with more than one result, e.g. {sample}")
    wrong_dead = set(led.dead_letters) - inputs.bad_ids
    if wrong_dead:
        out.append("good inputs dead-lettered: " + "; ".join(
            f"{i} ({desc(i)}): {led.dead_letters[i][0]['processor']} {led.dead_letters[i][0]['reason'][:160]}"
            for i in sorted(wrong_dead)[:8]))
    bad_predicted = set(led.predictions) & inputs.bad_ids
    if bad_predicted:
        out.append(f"known-bad inputs got a prediction: {[desc(i) for i in sorted(bad_predicted)]}")
    if led.side_dead_letters:
        first = next(iter(led.side_dead_letters.items()))
        out.append(f"{f['side_dead_letters']} side-branch dead letters, e.g. {first[0]}: {first[1][0]}")
    if led.unexpected:
        out.append(f"{led.unexpected} results carry keys that no input had")
    for item in inputs.items:  # a dead letter of an old input shows the input's own time, not its own
        got = [d.get("origin_timestamp") for d in led.dead_letters.get(item.input_id, [])]
        if item.timestamp is not None and got and got != [str(item.timestamp)] * len(got):
            out.append(f"{item.input_id} ({desc(item.input_id)}): dead-letter origin timestamps {got}, "
                       f"expected {item.timestamp}")
    if f["milvus_error"]:
        out.append(f"Milvus could not be read after the run: {f['milvus_error'][:300]}")
    if f["stalled"]:
        out.append(f"no input got a result for {o.scenario.stall_timeout:.0f}s after the fault and production ended")
    for key in ("missing_rows", "extra_rows", "duplicate_rows", "predicted_without_embedding"):
        if f[key]:
            out.append(f"Milvus/embedded: {key} = {f[key]}")
    if f["milvus_total_rows"] != f["milvus_rows"] and not f["milvus_error"]:
        out.append(f"Milvus collection has {f['milvus_total_rows']} rows, {f['milvus_rows']} of them for our inputs")
    if o.lag:
        out.append(f"consumer lag did not return to zero in {f['lag_wait_s']}s: {o.lag}")
    if f["dead_at_end"]:
        out.append(f"processes not running at the end: {f['dead_at_end']}")
    if f["stacks_dumped"]:
        out.append(f"the pipeline did not drain: Python stacks of {f['stacks_dumped']} dumped into their logs")
    unclean = {g: c for g, c in f["exit_codes"].items()
               if c != 0 and g not in f["dead_at_end"] and g not in f["stacks_dumped"]}
    if unclean:
        out.append(f"processes that did not exit 0 on SIGTERM: {unclean}")
    return out


def report_path() -> Path:
    """Where figures are appended: ``$CONVEYOR_FAULT_REPORT`` or ``build/fault-report.json``."""
    return Path(os.environ.get(REPORT_ENV) or DEFAULT_REPORT)


def record(figures_: dict[str, Any], issues: list[str], path: Optional[Path] = None) -> None:
    """Print the figures as one JSON line and append them (with the problems found and a UTC
    timestamp) to the report file, a JSON list."""
    entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures_,
             "passed": not issues, "problems": issues}
    print("FAULT-FIGURES " + json.dumps(figures_, sort_keys=False), flush=True)
    path = path or report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        runs = json.loads(path.read_text()) if path.exists() else []
        if not isinstance(runs, list):
            runs = []
    except ValueError:
        runs = []
    runs.append(entry)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(runs, indent=1) + "\n")
    tmp.replace(path)
    RECORDED.append(entry)


RECORDED: list[dict[str, Any]] = []
"""Entries recorded in this session (printed by the conftest's terminal summary)."""
