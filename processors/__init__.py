"""Business logic of Conveyor's stream processors (extract, embed, classify, drift).

Nothing in this package imports Kafka: processors take decoded records (dicts shaped
like the Avro schemas in ``schemas/``) and return output records or exceptions.
"""
