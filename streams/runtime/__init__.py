"""Running stages: the batch loop (:mod:`.runner`) with its guards (retry gating :mod:`.retry_gate`,
pausing for backpressure :mod:`.pausing`, poison-input quarantine :mod:`.poison`, fault injection
:mod:`.faults`), building a stage from the pipeline (:mod:`.stages`), several stages in one process
(:mod:`.supervisor`), and the health and readiness server (:mod:`.health`).
"""
