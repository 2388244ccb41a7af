"""Consumer lag from librdkafka statistics, with and without a committed offset the consumer knows."""
from conveyor.streams.telemetry.metrics import partition_lag


def test_lag_prefers_the_committed_offset_then_the_position():
    assert partition_lag({"consumer_lag": 7, "ls_offset": 100, "app_offset": 99}) == 7
    # transactions: offsets are committed by the producer, the consumer's own lag stays -1
    assert partition_lag({"consumer_lag": -1, "ls_offset": 120, "hi_offset": 121, "app_offset": 100}) == 20
    assert partition_lag({"consumer_lag": -1, "ls_offset": -1, "hi_offset": 50, "app_offset": 45}) == 5
    assert partition_lag({"consumer_lag": -1, "ls_offset": 10, "app_offset": -1001}) is None
