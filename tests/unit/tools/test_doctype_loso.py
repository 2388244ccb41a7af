"""Leave-one-source-out: a model never sees the source it is scored on, and auto routing is only
enabled where the out-of-source precision bound reaches the aim."""
from __future__ import annotations

import numpy as np
import pytest

from conveyor.tools.training.doc_sources import LABELS
from conveyor.tools.training.doctype_loso import (
    auto_routing,
    known_type_mean,
    leave_one_group_out,
    out_of_source,
    per_source,
    select_C,
)


def _docs(sources: list[str], labels: list[str], shippable: dict[str, bool]) -> list[dict]:
    return [{"rel": f"{s}/{i}", "source": s, "shippable": shippable[s], "label": lab}
            for i, (s, lab) in enumerate(zip(sources, labels))]


class Recorder:
    """A stand-in estimator that remembers which rows it was fitted on and predicts the first label."""

    fitted: list[set] = []

    def fit(self, X, y):
        Recorder.fitted.append(set(X[:, 0].astype(int).tolist()))
        self.classes_ = np.array(sorted(set(y.tolist())))
        return self

    def predict_proba(self, X):
        p = np.zeros((len(X), len(self.classes_)))
        p[:, 0] = 1.0
        return p


def test_each_source_is_scored_by_a_model_trained_without_it_and_never_on_test_only_sources():
    docs = _docs(["a", "a", "b", "b", "ro", "ro"], ["receipt", "invoice", "receipt", "invoice", "receipt", "invoice"],
                 {"a": True, "b": True, "ro": False})
    X = np.arange(len(docs), dtype=float).reshape(-1, 1)
    Recorder.fitted = []
    out_of_source(X, docs, Recorder)
    assert Recorder.fitted == [{2, 3}, {0, 1}, {0, 1, 2, 3}]  # a: trained on b; b: on a; ro: on a and b


def test_the_regularisation_is_chosen_without_the_test_only_sources_and_ties_go_to_the_smaller_C():
    docs = _docs(["a", "a", "b", "b", "ro", "ro"], ["receipt", "invoice", "receipt", "invoice", "receipt", "invoice"],
                 {"a": True, "b": True, "ro": False})
    for i, d in enumerate(docs):
        d["group"] = f"g{i // 2}"
    X = np.arange(len(docs), dtype=float).reshape(-1, 1)
    Recorder.fitted, asked = [], []
    C, table = select_C(X, docs, lambda C: asked.append(C) or Recorder(), grid=(1.0, 0.1, 10.0))
    assert Recorder.fitted and all(rows <= {0, 1, 2, 3} for rows in Recorder.fitted)  # never rows 4, 5 (ro)
    assert sorted(set(asked)) == [0.1, 1.0, 10.0] and [r["C"] for r in table] == [1.0, 0.1, 10.0]
    assert C == 0.1  # every C scores the same here: the strongest regularisation wins the tie


def test_leave_one_group_out_never_fits_a_document_with_its_near_duplicates():
    docs = _docs(["a"] * 4 + ["ro"], ["receipt", "receipt", "invoice", "invoice", "receipt"], {"a": True, "ro": False})
    for d, g in zip(docs, ["x", "x", "y", "z", "w"]):
        d["group"] = g
    Recorder.fitted = []
    proba = leave_one_group_out(np.arange(5, dtype=float).reshape(-1, 1), docs, Recorder)
    assert proba.shape == (4, len(LABELS))  # the shippable documents only
    assert Recorder.fitted == [{2, 3}, {0, 1, 3}, {0, 1, 2}]  # x = {0, 1} left out together


def test_the_floor_mean_leaves_out_a_source_of_only_unknown_types():
    rows = [{"accuracy": 1.0, "labels": {"receipt": 3}}, {"accuracy": 0.5, "labels": {"invoice": 1, "other": 1}},
            {"accuracy": 0.0, "labels": {"claim_form": 2}}]
    assert known_type_mean(rows) == 0.75


def test_auto_routing_is_disabled_unless_the_wilson_bound_reaches_the_aim():
    few = _docs(["s"] * 40, ["receipt"] * 40, {"s": True})
    right = np.tile(np.eye(len(LABELS))[0] * 0.99 + 0.0025, (40, 1))
    small = auto_routing(right, few, 0.98)
    assert small["enabled"] is False and small["threshold"] is None and small["all_right_needs"] == 133
    many = _docs(["s"] * 300, ["receipt"] * 300, {"s": True})
    large = auto_routing(np.tile(right[0], (300, 1)), many, 0.98)
    assert large["enabled"] is True and large["precision_lower_bound"] >= 0.98
    rows = per_source(np.tile(right[0], (300, 1)), many, large["threshold"])
    assert rows[0]["accuracy"] == 1.0 and rows[0]["auto"] == 300 and rows[0]["met"]


@pytest.mark.parametrize("rel, label", [("sroie/img/001.jpg", "receipt"), ("invoice2data/compare/oyo.pdf", "receipt"),
                                        ("cms1500_claim_forms/x.pdf", "claim_form"),
                                        ("mindee_samples/delivery_notes__default_sample.jpg", "other")])
def test_labels_follow_the_function_definitions(rel, label):
    from conveyor.tools.training.doc_sources import label_of

    assert label_of(rel)[0] == label
