"""Reviewers' decisions on the ``feedback`` topic (``schemas/feedback.avsc``, key: doc id): written
exactly once by the review app (:mod:`.writer`) and read back by the drift reference, shadow
scoring and the gated retrain (:mod:`.reader`), so what a decision record holds and which
decisions count are decided in one package."""
