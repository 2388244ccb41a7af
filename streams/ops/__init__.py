"""Operations on a running pipeline: the model registry (:mod:`.model_registry`), shadow scoring
(:mod:`.shadow`), reviewers' feedback (:mod:`.feedback`), per-stage ACLs (:mod:`.acls`) and the
audit trail (:mod:`.audit`).
"""
