"""Configuration: :class:`~.settings.Settings` from the environment (:mod:`.env` reads and checks the
variables), and the Kafka client security settings (:mod:`.security`: TLS, SASL).
"""
