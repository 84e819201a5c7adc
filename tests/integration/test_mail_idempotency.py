"""Idempotency-Key on POST /v3/mail/send: the same key with the same body gets
the first answer again and the mail is queued and sent once; the same key with
another body is 422; keys of different API keys never meet.
"""

import uuid

from helpers.mailpipe import (MAIL_TOPIC, SENT_OR_BEYOND, assert_json_error, encode,
                              mail_body)


def idem(value):
    return {"Idempotency-Key": value}


def assert_202(r):
    assert r.status_code == 202, "expected 202, got %d: %r" % (r.status_code, r.text[:500])
    assert r.content == b"", r.content[:200]
    return r.headers["X-Message-Id"]


def test_same_key_same_body_is_one_mail_sent_once(mp):
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    key = "order-%s" % uuid.uuid4().hex
    first = assert_202(mp.send_mail(body, headers=idem(key)))
    second = assert_202(mp.send_mail(body, headers=idem(key)))
    assert second == first, "a replay must answer the first X-Message-Id"

    mp.wait_status(first, SENT_OR_BEYOND, timeout=20)
    # ingest answers 202 only after Kafka acknowledged: a second record would be there
    recs = mp.kafka_records(marker, [MAIL_TOPIC])
    assert len(recs) == 1, "%d records of the mail on %s" % (len(recs), MAIL_TOPIC)
    assert [r[0] for r in mp.messages_by_marker(marker)] == [first]
    assert mp.sim_count(first) == 1

    # still the first answer once the mail is long gone
    third = assert_202(mp.send_mail(body, headers=idem(key)))
    assert third == first
    assert len(mp.kafka_records(marker, [MAIL_TOPIC])) == 1
    assert mp.sim_count(first) == 1


def test_same_key_other_body_is_422(mp):
    key = "order-%s" % uuid.uuid4().hex
    first = assert_202(mp.send_mail(mail_body(), headers=idem(key)))
    marker = uuid.uuid4().hex
    r = mp.send_mail(mail_body(marker=marker), headers=idem(key))
    assert_json_error(r, 422)
    assert mp.kafka_records(marker, [MAIL_TOPIC]) == []
    # the first mail is not disturbed
    mp.wait_status(first, SENT_OR_BEYOND, timeout=20)
    assert mp.sim_count(first) == 1


def test_without_a_key_identical_requests_are_two_mails(mp):
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    a = assert_202(mp.send_mail(body))
    b = assert_202(mp.send_mail(body))
    assert a != b
    assert len(mp.kafka_records(marker, [MAIL_TOPIC])) == 2


def test_the_same_key_value_under_another_api_key_is_independent(mp):
    other, _ = mp.create_api_key("idem-%s" % uuid.uuid4().hex[:6], "mail.send")
    r = mp.wait_key_loaded(other)
    assert r.status_code == 200, "a new mail.send key: %d %r" % (r.status_code, r.text[:300])

    key = "shared-%s" % uuid.uuid4().hex
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    mine = assert_202(mp.send_mail(body, headers=idem(key)))
    theirs = assert_202(mp.send_mail(body, key=other, headers=idem(key)))
    assert theirs != mine, "another API key got this key's answer"
    # each key replays its own answer
    assert assert_202(mp.send_mail(body, key=other, headers=idem(key))) == theirs
    assert assert_202(mp.send_mail(body, headers=idem(key))) == mine

    # another body under the same value: refused for a key that used it ...
    assert_json_error(mp.send_mail(mail_body(), key=other, headers=idem(key)), 422)
    # ... and a fresh start for a key that did not
    third, _ = mp.create_api_key("idem3-%s" % uuid.uuid4().hex[:6], "mail.send")
    assert mp.wait_key_loaded(third).status_code == 200
    assert_202(mp.send_mail(mail_body(), key=third, headers=idem(key)))

    assert len(mp.kafka_records(marker, [MAIL_TOPIC])) == 2
    for mid in (mine, theirs):
        mp.wait_status(mid, SENT_OR_BEYOND, timeout=20)
        assert mp.sim_count(mid) == 1
