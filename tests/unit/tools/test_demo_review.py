"""`make demo` ends with the review queue's URL and how many of its results wait there."""
from __future__ import annotations

from conveyor.streams.config.settings import Settings
from conveyor.tools.accounting import Ledger
from conveyor.tools.demo.run import review_line


def test_the_demo_points_at_the_review_queue():
    ledger = Ledger(expected={"a", "b", "c"}, predictions={"a": [{"routing": "review"}], "b": [{"routing": "auto"}]},
                    dead_letters={"c": [{}]})
    line = review_line(Settings(namespace="demo-1"), ledger, environ={"CONVEYOR_REVIEW_PORT": "9099"})
    assert "http://127.0.0.1:9099/ — 1 items wait there" in line
    assert "CONVEYOR_NAMESPACE=demo-1 CONVEYOR_REVIEW_USERS=<name>:<password> conveyor review" in line
