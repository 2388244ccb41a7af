"""Telemetry every stage shares: structured logs (:mod:`.logs`) and the Prometheus metrics (:mod:`.metrics`).
"""
