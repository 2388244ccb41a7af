from dlq import envelope
from processors.errors import CorruptDocumentError, TransientError


def _raise(exc):
    try:
        raise exc
    except Exception as caught:  # noqa: BLE001
        return caught


def test_headers_describe_the_failure_and_keep_the_originals():
    exc = _raise(CorruptDocumentError("truncated JPEG"))
    origin = envelope.Origin("ns.documents", 2, 41, 1_700_000_000_000)
    headers = envelope.dead_letter_headers([("tenant", b"acme"), (envelope.ATTEMPT, b"1")], exc, origin,
                                           processor="extract", version="0.1.0", group="ns.extract")
    assert headers[0] == ("tenant", b"acme")
    h = envelope.decode_headers(headers)
    assert h[envelope.ORIGIN_TOPIC] == "ns.documents" and h[envelope.ORIGIN_PARTITION] == "2"
    assert h[envelope.ORIGIN_OFFSET] == "41" and h[envelope.ORIGIN_TIMESTAMP] == "1700000000000"
    assert h[envelope.EXCEPTION_CLASS] == "processors.errors.CorruptDocumentError"
    assert h[envelope.EXCEPTION_MESSAGE] == "truncated JPEG"
    assert h[envelope.ERROR_CLASS] == "permanent"
    assert "CorruptDocumentError" in h[envelope.STACKTRACE]
    assert sum(k == envelope.ATTEMPT for k, _ in headers) == 1  # stale dlq header replaced


def test_transient_errors_are_classified():
    assert envelope.error_class(TransientError("milvus down")) == "transient"
    assert envelope.error_class(ValueError("x")) == "permanent"


def test_long_messages_are_truncated():
    exc = _raise(ValueError("x" * 10_000))
    h = envelope.decode_headers(envelope.error_headers(exc, envelope.Origin("t", 0, 0, 0), processor="p",
                                                       version="1", group="g"))
    assert len(h[envelope.EXCEPTION_MESSAGE]) == envelope.MAX_MESSAGE_CHARS


def test_original_timestamp_prefers_the_retry_origin_then_the_replay_header_then_the_record():
    replayed = [("x", b"1"), (envelope.REPLAY_ORIGIN_TIMESTAMP, b"1700000000000")]
    assert envelope.original_timestamp(replayed, 1_800_000_000_000, retried_at=1_600_000_000_000) == 1_600_000_000_000
    assert envelope.original_timestamp(replayed, 1_800_000_000_000) == 1_700_000_000_000
    assert envelope.original_timestamp([(envelope.REPLAY_ORIGIN_TIMESTAMP, b"junk")], 1_800_000_000_000) == \
        1_800_000_000_000
    assert envelope.original_timestamp(None, -1) == 0
