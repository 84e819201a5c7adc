"""Idempotency-Key on POST /v3/mail/send: the same key with the same body gets
the first answer again and the mail is queued and sent once; the same key with
another body is 422; keys of different API keys never meet.  All of it also
after Redis lost its records (FLUSHALL): PostgreSQL's messages hold the key.
"""

import signal
import time
import uuid

from helpers.mailpipe import (MAIL_TOPIC, SENT_OR_BEYOND, assert_json_error, encode,
                              mail_body, wait_until)


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


# --- Redis loses the records: PostgreSQL (messages.idempotency_key) is the truth ---------

def message_key(mp, message_id):
    """(idempotency_key, idempotency_body_sha256, status, last_error) of a message, or None."""
    rows = mp.query("select idempotency_key, idempotency_body_sha256, status, last_error"
                    " from messages where message_id = %s", message_id)
    return rows[0] if rows else None


def wait_row(mp, message_id, timeout=20):
    return wait_until(lambda: message_key(mp, message_id), timeout, interval=0.1,
                      desc="the messages row of %s" % message_id)


def test_after_flushall_the_same_key_and_body_replay_from_postgresql(mp):
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    key = "flush-%s" % uuid.uuid4().hex
    first = assert_202(mp.send_mail(body, headers=idem(key)))
    row = wait_row(mp, first)
    assert row[0] == key and len(row[1]) == 64, row
    mp.wait_status(first, SENT_OR_BEYOND, timeout=20)

    mp.redis().flushall()
    again = assert_202(mp.send_mail(body, headers=idem(key)))
    assert again == first, "after FLUSHALL a repeated key got a new message id"
    # the Redis record is back: the next repeat needs no database
    assert mp.redis().keys("*idk:*"), "the Redis record was not seeded again"
    assert assert_202(mp.send_mail(body, headers=idem(key))) == first

    assert len(mp.kafka_records(marker, [MAIL_TOPIC])) == 1
    assert [r[0] for r in mp.messages_by_marker(marker)] == [first]
    time.sleep(1)
    assert mp.sim_count(first) == 1


def test_after_flushall_the_same_key_with_another_body_is_422(mp):
    key = "flush422-%s" % uuid.uuid4().hex
    first = assert_202(mp.send_mail(mail_body(), headers=idem(key)))
    wait_row(mp, first)
    mp.redis().flushall()
    marker = uuid.uuid4().hex
    assert_json_error(mp.send_mail(mail_body(marker=marker), headers=idem(key)), 422)
    assert mp.kafka_records(marker, [MAIL_TOPIC]) == []
    # the re-seeded record refuses it too, and still replays the first body's answer
    assert_json_error(mp.send_mail(mail_body(marker=marker), headers=idem(key)), 422)
    mp.wait_status(first, SENT_OR_BEYOND, timeout=20)
    assert mp.sim_count(first) == 1


def settled(mp, ids):
    """Wait until every message of ids is sent (or beyond) or failed; their rows."""
    def done():
        rows = [message_key(mp, i) for i in ids]
        if all(r and (r[2] in SENT_OR_BEYOND or r[2] == "failed") for r in rows):
            return rows
        return None
    return wait_until(done, 30, interval=0.2, desc="messages %s settled" % (ids,))


def assert_one_sent(mp, ids):
    ids = sorted(set(ids))
    rows = settled(mp, ids)
    time.sleep(1)  # a send the simulator gets late would show up here
    counts = [mp.sim_count(i) for i in ids]
    assert sum(counts) == 1, "sent %r times for ids %r (rows %r)" % (counts, ids, rows)
    for i, row in zip(ids, rows):
        if row[2] == "failed":
            other = [j for j in ids if j != i][0]
            assert row[3].startswith("duplicate of %s" % other), row
            assert row[0] is None, "a duplicate must not hold the key: %r" % (row,)


def test_flushall_right_after_the_first_answer_never_sends_twice(mp):
    for _ in range(3):
        marker = uuid.uuid4().hex
        body = encode(mail_body(marker=marker))
        key = "race-%s" % uuid.uuid4().hex
        first = assert_202(mp.send_mail(body, headers=idem(key)))
        mp.redis().flushall()
        second = assert_202(mp.send_mail(body, headers=idem(key)))
        assert_one_sent(mp, [first, second])


def test_a_key_accepted_twice_while_the_sender_is_away_is_sent_once(mp):
    """The window the unique index closes: Redis lost the key before the sender wrote the
    first row, so ingest accepted the key a second time; the sender refuses the second."""
    key = "window-%s" % uuid.uuid4().hex
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    other = encode(mail_body(marker=uuid.uuid4().hex))
    mp.stack("stop", "sender")
    try:
        first = assert_202(mp.send_mail(body, headers=idem(key)))
        mp.redis().flushall()
        second = assert_202(mp.send_mail(body, headers=idem(key)))
        assert second != first  # nothing in PostgreSQL yet: ingest could not know
        mp.redis().flushall()
        third = assert_202(mp.send_mail(other, headers=idem(key)))
    finally:
        mp.stack("start", "sender")
    ids = [first, second, third]
    rows = settled(mp, ids)
    time.sleep(1)
    counts = [mp.sim_count(i) for i in ids]
    assert sum(counts) == 1, "sent %r times for %r (rows %r)" % (counts, ids, rows)
    winner = ids[counts.index(1)]
    for i, row in zip(ids, rows):
        if i == winner:
            assert row[0] == key, row
        else:
            assert row[2] == "failed" and row[3].startswith("duplicate of %s" % winner), row
            assert row[0] is None, row
    # and from now on the key answers the winner's id (or 422 for the other body)
    mp.redis().flushall()
    assert assert_202(mp.send_mail(other if winner == third else body,
                                   headers=idem(key))) == winner
    assert_json_error(mp.send_mail(body if winner == third else other, headers=idem(key)), 422)


def test_a_key_older_than_its_ttl_is_free_again_after_flushall(mp):
    key = "expired-%s" % uuid.uuid4().hex
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    first = assert_202(mp.send_mail(body, headers=idem(key)))
    mp.wait_status(first, SENT_OR_BEYOND, timeout=20)
    # as if sent two days ago: past mail.idempotency_ttl_seconds (1 day in the stack)
    mp.query("update messages set created_at = now() - interval '2 days'"
             " where message_id = %s", first)
    mp.redis().flushall()
    second = assert_202(mp.send_mail(body, headers=idem(key)))
    assert second != first
    mp.wait_status(second, SENT_OR_BEYOND, timeout=20)
    assert mp.sim_count(second) == 1
    assert message_key(mp, second)[0] == key
    assert message_key(mp, first)[0] is None, "the expired binding was not cleared"


def test_postgresql_away_and_redis_flushed_is_503_never_a_new_mail(mp):
    marker = uuid.uuid4().hex
    body = encode(mail_body(marker=marker))
    key = "pgdown-%s" % uuid.uuid4().hex
    first = assert_202(mp.send_mail(body, headers=idem(key)))
    wait_row(mp, first)
    stopped = False
    try:
        mp.stack("stop", "postgres", timeout=60)
        stopped = True
        # Redis still has the record: answered without the database
        assert assert_202(mp.send_mail(body, headers=idem(key))) == first
        mp.redis().flushall()
        assert_json_error(mp.send_mail(body, headers=idem(key)), 503)
        # a new key cannot be checked either: 503, not a mail that might be a duplicate
        assert_json_error(mp.send_mail(body, headers=idem(key + "-new")), 503)
        mp.stack("start", "postgres", timeout=120)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "postgres", timeout=120, check=False)
    r = wait_until(lambda: [x for x in [mp.send_mail(body, headers=idem(key))]
                            if x.status_code != 503], 30, interval=0.5,
                   desc="an answer other than 503 once postgres is back")[0]
    assert assert_202(r) == first
    assert len(mp.kafka_records(marker, [MAIL_TOPIC])) == 1
    mp.wait_status(first, SENT_OR_BEYOND, timeout=30)
    assert mp.sim_count(first) == 1


def freeze_postgres(mp, sig):
    """sig (SIGSTOP/SIGCONT) to this stack's postmaster and each child's process group."""
    mp.signal_postgres(sig)


def test_a_frozen_postgresql_is_503_within_seconds_not_a_hang(mp):
    body = encode(mail_body())
    key = "frozen-%s" % uuid.uuid4().hex
    first = assert_202(mp.send_mail(body, headers=idem(key)))
    wait_row(mp, first)
    mp.redis().flushall()
    freeze_postgres(mp, signal.SIGSTOP)
    try:
        took = []
        for k in (key, key + "-b", key + "-c"):
            t = time.monotonic()
            assert_json_error(mp.send_mail(body, headers=idem(k), timeout=20), 503)
            took.append(time.monotonic() - t)
        # a request without the header needs no database
        assert_202(mp.send_mail(body))
    finally:
        freeze_postgres(mp, signal.SIGCONT)
    print("503 after %s s" % ["%.2f" % t for t in took])
    assert max(took) < 6, "503 took %r s" % took
    r = wait_until(lambda: [x for x in [mp.send_mail(body, headers=idem(key))]
                            if x.status_code != 503], 30, interval=0.5,
                   desc="an answer other than 503 once postgres runs again")[0]
    assert assert_202(r) == first
