"""The one failure envelope: its fields, codec and the permanent/transient classification."""
from conveyor.dlq import envelope
from conveyor.dlq.policy import error_class
from conveyor.processors.errors import CorruptDocumentError, TransientError


def _raise(exc):
    try:
        raise exc
    except Exception as caught:  # noqa: BLE001 - returns whatever was raised, with its traceback
        return caught


def test_headers_describe_the_failure_and_keep_the_originals():
    exc = _raise(CorruptDocumentError("truncated JPEG"))
    origin = envelope.Origin("ns.documents", 2, 41, 1_700_000_000_000)
    failure = envelope.describe(exc, origin, processor="extract", version="0.1.0", group="ns.extract",
                                error_class=error_class(exc))
    headers = envelope.attach([("tenant", b"acme"), (envelope.ATTEMPT, b"1")], failure, envelope.DLQ)
    assert headers[0] == ("tenant", b"acme")
    h = envelope.decode_headers(headers)
    assert h[envelope.ORIGIN_TOPIC] == "ns.documents" and h[envelope.ORIGIN_PARTITION] == "2"
    assert h[envelope.ORIGIN_OFFSET] == "41" and h[envelope.ORIGIN_TIMESTAMP] == "1700000000000"
    assert h[envelope.EXCEPTION_CLASS] == "conveyor.processors.errors.CorruptDocumentError"
    assert h[envelope.EXCEPTION_MESSAGE] == "truncated JPEG"
    assert h[envelope.ERROR_CLASS] == "permanent"
    assert "CorruptDocumentError" in h[envelope.STACKTRACE]
    assert sum(k == envelope.ATTEMPT for k, _ in headers) == 1  # stale dlq header replaced


def test_transient_errors_are_classified():
    assert error_class(TransientError("milvus down")) == "transient"
    assert error_class(ValueError("x")) == "permanent"


def test_long_messages_are_truncated():
    exc = _raise(ValueError("x" * 10_000))
    h = envelope.decode_headers(envelope.encode(envelope.describe(
        exc, envelope.Origin("t", 0, 0, 0), processor="p", version="1", group="g", error_class="permanent"),
        envelope.DLQ))
    assert len(h[envelope.EXCEPTION_MESSAGE]) == envelope.MAX_MESSAGE_CHARS


def test_original_timestamp_prefers_the_retry_origin_then_the_replay_header_then_the_record():
    replayed = [("x", b"1"), (envelope.REPLAY_ORIGIN_TIMESTAMP, b"1700000000000")]
    assert envelope.original_timestamp(replayed, 1_800_000_000_000, retried_at=1_600_000_000_000) == 1_600_000_000_000
    assert envelope.original_timestamp(replayed, 1_800_000_000_000) == 1_700_000_000_000
    assert envelope.original_timestamp([(envelope.REPLAY_ORIGIN_TIMESTAMP, b"junk")], 1_800_000_000_000) == \
        1_800_000_000_000
    assert envelope.original_timestamp(None, -1) == 0


def test_retry_records_and_dead_letters_share_one_codec():
    exc = _raise(TransientError("registry timed out"))
    origin = envelope.Origin("ns.texts", 1, 7, 1_700_000_000_000)
    failure = envelope.describe(exc, origin, processor="embed", version="2.0", group="ns.embed",
                                error_class="transient", attempt=2, first_failed_at=5, failed_at=9, due=19)
    for prefix in (envelope.RETRY, envelope.DLQ):
        headers = envelope.attach([("trace", b"t1")], failure, prefix)
        assert envelope.strip(headers) == [("trace", b"t1")]
        assert envelope.decode(headers, prefix) == failure
        other = envelope.DLQ if prefix == envelope.RETRY else envelope.RETRY
        assert envelope.decode(headers, other) is None
    retry_headers = envelope.decode_headers(envelope.encode(failure, envelope.RETRY))
    assert retry_headers[envelope.RETRY_DUE] == "19" and retry_headers[envelope.RETRY_ORIGIN_OFFSET] == "7"
    assert envelope.due_ms(envelope.encode(failure, envelope.RETRY)) == 19


def test_malformed_failure_headers_count_as_first_delivery():
    assert envelope.decode([(envelope.RETRY_ATTEMPT, b"x"), (envelope.RETRY_DUE, None)], envelope.RETRY) is None
    assert envelope.due_ms([(envelope.RETRY_DUE, b"soon")]) == 0
