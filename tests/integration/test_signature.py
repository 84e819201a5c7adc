"""Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body.

Good signatures are accepted and stored; every kind of bad or missing
signature is answered 401 with the JSON error body and leaves no trace in
Kafka or PostgreSQL.
"""

import base64
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from helpers.mailpipe import (SIG_HEADER, TS_HEADER, assert_accepted,
                              assert_json_error, encode, expected_event_time)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def stored(mp, tag, n, timeout=30):
    """Wait for this tag's n rows and return {sg_event_id: row}."""
    mp.wait_rows(tag, n, timeout)
    rows = mp.event_rows(tag)
    assert all(len(v) == 1 for v in rows.values()), "duplicates: %r" % rows
    return {k: v[0] for k, v in rows.items()}


def assert_no_trace(mp, tag):
    """Nothing of this tag reached Kafka, events or dead_letters."""
    assert mp.kafka_find(tag + "-") == [], "a rejected body reached Kafka"
    mp.wait_sink_idle()
    assert mp.count_events(tag)[0] == 0, "a rejected body was stored in events"
    assert mp.dead_letters(tag + "-") == [], "a rejected body was stored in dead_letters"


def test_valid_signature_is_stored(mp, tag, make_event):
    evs = [make_event(), make_event(event="processed", tls=None)]
    r = mp.post_webhook(evs)
    assert_accepted(r, 2)
    rows = stored(mp, tag, 2)
    assert set(rows) == {e["sg_event_id"] for e in evs}
    for e in evs:
        row = rows[e["sg_event_id"]]
        assert row["event"] == e["event"]
        assert row["email"] == e["email"]
        assert row["event_time"] == expected_event_time(e["timestamp"])
        assert row["raw"] == e


def test_trailing_crlf_is_part_of_the_signed_bytes(mp, tag, make_event):
    ev = make_event()
    body = encode([ev]) + b"\r\n"
    assert_accepted(mp.post_webhook(body), 1)
    assert stored(mp, tag, 1)[ev["sg_event_id"]]["raw"] == ev


def test_spacing_and_escaped_slashes_are_signed_raw(mp, tag, make_event):
    # SendGrid's own serialisation: spaces, "\/" escapes, \u escapes; the
    # signature covers these exact bytes, not a re-serialisation
    ev = make_event(event="click", url="https://example.com/a/b?c=d", useragent="Mozilla/5.0")
    body = json.dumps([ev], indent=1, ensure_ascii=True).replace("/", "\\/").encode()
    body = body.replace(b"example.com", b"ex\\u0061mple.com")
    assert b"\\/" in body and b"\\u0061" in body
    assert_accepted(mp.post_webhook(body), 1)
    row = stored(mp, tag, 1)[ev["sg_event_id"]]
    assert row["raw"] == ev
    assert row["url"] == "https://example.com/a/b?c=d"


def test_chunked_body_is_accepted(mp, tag, make_event):
    # no Content-Length: the body arrives in chunks and must still be read whole
    evs = [make_event() for _ in range(20)]
    body = encode(evs)
    ts = str(int(time.time()))
    headers = {TS_HEADER: ts, SIG_HEADER: mp.sign(body, ts),
               "Content-Type": "application/json"}
    chunks = (body[i:i + 1000] for i in range(0, len(body), 1000))
    r = mp.request("POST", "/webhooks/sendgrid", data=chunks, headers=headers)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_accepted(r, 20)
    assert len(stored(mp, tag, 20)) == 20


def test_high_s_signature_is_accepted(mp, tag, make_event):
    # real SendGrid signatures are not normalised to low S
    ev = make_event()
    body = encode([ev])
    ts = str(int(time.time()))
    r_, s_ = decode_dss_signature(base64.b64decode(mp.sign(body, ts)))
    if s_ <= P256_ORDER // 2:
        s_ = P256_ORDER - s_
    sig = base64.b64encode(encode_dss_signature(r_, s_)).decode()
    resp = mp.post_webhook(body, ts=ts, headers={SIG_HEADER: sig})
    assert_accepted(resp, 1)
    stored(mp, tag, 1)


def test_day_old_timestamp_is_accepted(mp, tag, make_event):
    # SendGrid retries the same signed POST for up to 24 hours
    ts = str(int(time.time()) - 23 * 3600)
    ev = make_event(timestamp=int(ts))
    assert_accepted(mp.post_webhook([ev], ts=ts), 1)
    stored(mp, tag, 1)


def _tampered_body(mp, evs, ts):
    body = encode(evs)
    sig = mp.sign(body, ts)
    return body.replace(b"alice@", b"mallory@"), {SIG_HEADER: sig}


def _tampered_timestamp(mp, evs, ts):
    body = encode(evs)
    return body, {SIG_HEADER: mp.sign(body, ts), TS_HEADER: str(int(ts) + 1)}


def _other_key(mp, evs, ts):
    body = encode(evs)
    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {SIG_HEADER: base64.b64encode(sig).decode()}


def _missing_signature(mp, evs, ts):
    return encode(evs), {SIG_HEADER: None}


def _missing_timestamp(mp, evs, ts):
    return encode(evs), {TS_HEADER: None}


def _no_headers(mp, evs, ts):
    return encode(evs), {SIG_HEADER: None, TS_HEADER: None}


def _not_base64(mp, evs, ts):
    return encode(evs), {SIG_HEADER: "this is not base64!!*"}


def _empty_signature(mp, evs, ts):
    return encode(evs), {SIG_HEADER: ""}


def _base64_not_der(mp, evs, ts):
    return encode(evs), {SIG_HEADER: base64.b64encode(b"\x30\x06garbage" * 8).decode()}


def _signature_of_other_body(mp, evs, ts):
    body = encode(evs)
    return body, {SIG_HEADER: mp.sign(body + b" ", ts)}


BAD = [_tampered_body, _tampered_timestamp, _other_key, _missing_signature,
       _missing_timestamp, _no_headers, _not_base64, _empty_signature,
       _base64_not_der, _signature_of_other_body]


@pytest.mark.parametrize("forge", BAD, ids=[f.__name__.strip("_") for f in BAD])
def test_bad_signature_is_401_and_not_stored(mp, tag, make_event, forge):
    evs = [make_event(), make_event(event="open")]
    ts = str(int(time.time()))
    body, headers = forge(mp, evs, ts)
    r = mp.post_webhook(body, ts=ts, headers=headers)
    assert_json_error(r, 401)
    # a valid post right after still works, and the rejected one left no trace
    ok = make_event(sg_event_id="%sok-%s" % (tag, uuid.uuid4().hex))
    assert_accepted(mp.post_webhook([ok]), 1)
    mp.wait_rows(tag + "ok", 1)
    assert_no_trace(mp, tag)
