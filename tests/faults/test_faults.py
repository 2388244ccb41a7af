"""Fault-injection suite: the whole pipeline on ≥2,000 real inputs while something breaks.

Each scenario runs extract, embed, index and classify as supervised processes on the real
stack and a real Milvus 2.3.5 server, produces 2,000 BANKING77 texts and 8 real documents
(plus, in the last scenario, damaged files and hostile payloads) over a minute, injects its
fault, and then requires: every input exactly once among predictions (read_committed) or dead
letters, dead letters only for the known-bad inputs, Milvus holding exactly one row per chunk
of every embedded input, and consumer lag back at zero. Figures go to stdout, the terminal
summary and ``build/fault-report.json`` (``CONVEYOR_FAULT_REPORT``).

Knobs (environment): ``CONVEYOR_FAULT_TEXTS`` (default 2000), ``CONVEYOR_FAULT_PRODUCE_SECONDS``
(default 60), ``CONVEYOR_FAULT_KILLS`` (default 12), ``CONVEYOR_FAULT_SUITE_TRANSIENT_RATE``
(scenario 4, default 0.1), ``CONVEYOR_FAULT_SEED``.
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from conveyor.streams.config import env
from conveyor.streams.kafka.serde import key_bytes
from conveyor.streams.runtime.faults import injected_failure
from tests.faults.faults import KillProcessors, MilvusOutage, RestartBroker, no_fault
from tests.faults.harness import Outcome, Scenario, problems, record, run_scenario
from tests.faults.inputs import build_inputs

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(1500)]

N_TEXTS = int(os.environ.get("CONVEYOR_FAULT_TEXTS") or 2000)
PRODUCE_SECONDS = float(os.environ.get("CONVEYOR_FAULT_PRODUCE_SECONDS") or 60)
KILLS = int(os.environ.get("CONVEYOR_FAULT_KILLS") or 12)
TRANSIENT_RATE = float(os.environ.get("CONVEYOR_FAULT_SUITE_TRANSIENT_RATE") or 0.1)
MIN_KILLS = 10


def run(name, settings, tmp_path, fault, seed, *, with_bad=False, checks=(), **kwargs) -> Outcome:
    """Run one scenario, record its figures, and fail with every problem found (the harness's
    and the test's own ``checks``: callables ``outcome -> list[str]``)."""
    inputs = build_inputs(settings, n_texts=N_TEXTS, with_bad=with_bad)
    assert len(inputs.ids) >= 2000 or N_TEXTS < 2000
    outcome = run_scenario(Scenario(name, settings, inputs, fault, tmp_path / "logs", seed=seed,
                                    produce_seconds=PRODUCE_SECONDS, **kwargs))
    issues = problems(outcome) + [p for check in checks for p in check(outcome)]
    record(outcome.figures, issues)
    assert not issues, "\n".join(issues) + "\n\nprocessor logs (tails):\n" + outcome.log_tails()
    return outcome


def test_sigkill_random_processors(fault_settings, tmp_path, fault_seed):
    """1. SIGKILL a random processor at random times (≥10 kills); the supervisor restarts it."""
    def enough_kills(o: Outcome) -> list[str]:
        f = o.figures
        out = [] if f["kills"] >= MIN_KILLS else [f"only {f['kills']} kills (need {MIN_KILLS})"]
        if sum(f["restarts"].values()) < f["kills"]:
            out.append(f"{f['kills']} kills but {sum(f['restarts'].values())} restarts: {f['restarts']}")
        return out

    run("sigkill", fault_settings, tmp_path, KillProcessors(kills=KILLS), fault_seed, checks=[enough_kills])


def test_broker_restart(fault_settings, restartable_broker, tmp_path, fault_seed):
    """2. Restart the Kafka broker (same port, same data dir) while inputs are produced and processed."""
    settings = dataclasses.replace(fault_settings, bootstrap_servers=restartable_broker.settings.bootstrap_servers)

    def restarted(o: Outcome) -> list[str]:
        ev = [e for e in o.fault_log.events if e.get("action") == "broker restart"]
        if not ev or ev[0]["old_pid"] is None or ev[0]["old_pid"] == ev[0]["new_pid"]:
            return [f"broker was not restarted: {o.fault_log.events}"]
        return []

    run("broker", settings, tmp_path, RestartBroker(restartable_broker, after=0.4 * PRODUCE_SECONDS),
        fault_seed, checks=[restarted])


def test_milvus_unavailable_30s(fault_settings, fault_milvus, tmp_path, fault_seed):
    """3. Stop the Milvus server for 30 s mid-run: index pauses (backpressure), nothing is lost."""
    def was_down(o: Outcome) -> list[str]:
        ev = [e for e in o.fault_log.events if e.get("action") == "milvus started"]
        return [] if ev and ev[0]["down_s"] >= 30 else [f"Milvus was not down 30 s: {o.fault_log.events}"]

    run("milvus", fault_settings, tmp_path, MilvusOutage(fault_milvus, after=0.3 * PRODUCE_SECONDS, down_for=30),
        fault_seed, checks=[was_down])


def test_transient_failures_take_the_retry_path(fault_settings, tmp_path, fault_seed, monkeypatch):
    """4. Inject transient failures (CONVEYOR_FAULT_TRANSIENT_RATE) into every processor: the
    records go through the retry topics and still end with exactly one result, none dead-lettered."""
    monkeypatch.setenv(env.FAULT_TRANSIENT_RATE, str(TRANSIENT_RATE))

    def retried(o: Outcome) -> list[str]:
        # Which records get the injected failures is a hash of (processor, key): every chosen
        # input must have passed through that processor's retry topic at least once.
        docs = {i.input_id for i in o.scenario.inputs.items if i.kind == "document"}
        out = []
        for proc in ("extract", "embed", "index", "classify"):
            reach = docs if proc == "extract" else o.scenario.inputs.good_ids
            chosen = {i for i in reach if injected_failure(proc, key_bytes(i), 0, TRANSIENT_RATE)}
            missed = chosen - set(o.retried.get(proc, {}))
            if missed:
                out.append(f"{len(missed)} of {len(chosen)} inputs chosen for injected failures in {proc} never "
                           f"went through its retry topic, e.g. {sorted(missed)[:5]}")
        return out

    run("transient", fault_settings, tmp_path, no_fault, fault_seed, checks=[retried],
        notes={"transient_rate": TRANSIENT_RATE})


def test_damaged_files_and_hostile_payloads(fault_settings, tmp_path, fault_seed):
    """5. Damaged files and hostile payloads mixed into the stream: exactly those are dead
    letters (of the processor that reads them first, with a reason), everything else is predicted."""
    def dead_letters_explained(o: Outcome) -> list[str]:
        out = []
        for i in sorted(o.scenario.inputs.bad_ids & set(o.ledger.dead_letters)):
            d = o.ledger.dead_letters[i][0]
            if d["processor"] not in ("extract", "embed") or not d["reason"] or d["error_class"] != "permanent":
                out.append(f"{i} ({o.scenario.inputs.describe(i)}): dead letter {d}")
        return out

    run("hostile", fault_settings, tmp_path, no_fault, fault_seed, with_bad=True, checks=[dead_letters_explained])
