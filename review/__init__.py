"""Human review: the web app over the predictions routed to review, and the feedback topic.

``conveyor review`` serves :mod:`conveyor.review.app`; the queue is rebuilt from the topics
(:mod:`conveyor.review.queue`); each decision is one Avro record on ``<ns>.feedback``,
written exactly once (:mod:`conveyor.review.feedback`).
"""
