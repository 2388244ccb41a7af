"""The Kafka runtime: clients (:mod:`.clients`), the topic catalogue (:mod:`.topics`), Avro serde
with the schema registry (:mod:`.serde`), topic administration (:mod:`.admin`), producing inputs and
consuming results (:mod:`.io`, large documents through :mod:`.blobstore`), delivery reports
(:mod:`.delivery`), the dead-letter store (:mod:`.deadletters`), and what a consumed record always
carries, typed as such (:mod:`.records`).
"""
