"""The pipeline definition: every stage, its topics and schemas (:mod:`.pipeline`), and the
processors and sinks third parties register through entry points (:mod:`.plugins`).
"""
