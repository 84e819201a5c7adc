"""The sender against a misbehaving SendGrid (the simulator's fault knobs,
POST /sim/faults): 5xx retried with backoff, 429 retried at X-RateLimit-Reset,
other 4xx dead-lettered with SendGrid's error body, and a time-out after
SendGrid accepted the mail not sent twice.

The knobs are global to the simulator: each test first waits until the sender
has nothing left to do, so no other mail takes the fault, and clears the
knobs in the end (the `sim` fixture).
"""

import datetime
import json
import math
import time

from helpers.mailpipe import (AMBIGUOUS_GRACE_S, MAIL_DLQ_TOPIC, MAIL_TOPIC, REDIS_PREFIX,
                              SENDGRID_TIMEOUT_S, SENT_OR_BEYOND, mail_body, wait_until)

# what the simulator's 400 fault answers (SendGrid's shape)
SG_400_MESSAGE = "The from email does not contain a valid address."


def wait_sim_count(mp, mid, n, timeout=20):
    return wait_until(lambda: mp.sim_count(mid) >= n and mp.sim_count(mid), timeout,
                      interval=0.1, desc="the simulator to accept %s %d time(s)" % (mid, n))


def test_500_twice_then_202_is_sent_once_after_3_attempts(mp, sim):
    mp.wait_sender_idle()
    sim.faults(status=500, count=2)
    mid = mp.send_ok(mail_body())
    row = mp.wait_status(mid, SENT_OR_BEYOND, timeout=30)
    assert mp.sim_count(mid) == 1
    row = mp.wait_message(mid, lambda r: r["sendgrid_message_id"], 10)
    assert row["attempts"] == 3, "attempts %r" % row["attempts"]
    assert row["sendgrid_message_id"] == mp.sim_messages(mid)["x_message_ids"][0]
    assert sim.faults()["count"] == 0, "the two 500s were not both taken"


def test_429_waits_for_the_rate_limit_reset(mp, sim):
    mp.wait_sender_idle()
    sim.faults(status=429, count=1, reset=2)
    t0 = time.time()
    m0 = time.monotonic()
    mid = mp.send_ok(mail_body())
    wait_sim_count(mp, mid, 1, timeout=30)
    waited = time.monotonic() - m0
    row = mp.wait_message(mid, lambda r: r["sent_at"] is not None, 10)
    assert mp.sim_count(mid) == 1
    assert row["attempts"] == 2, "attempts %r" % row["attempts"]
    # the 429 came after t0 with X-RateLimit-Reset = (its epoch second) + 2, so the
    # retry may not start before floor(t0) + 2; the backoff alone (200 ms) would
    reset = datetime.datetime.fromtimestamp(math.floor(t0) + 2, datetime.timezone.utc)
    assert row["sent_at"] >= reset, (
        "sent at %s, before X-RateLimit-Reset %s" % (row["sent_at"], reset))
    assert waited >= 1.0, "sent %.2fs after the request" % waited
    print("sent %.2fs after the request" % waited)


def test_400_fails_for_good_with_sendgrids_error_in_the_dead_letters(mp, sim):
    mp.wait_sender_idle()
    sim.faults(status=400, count=1)
    mid = mp.send_ok(mail_body())
    row = mp.wait_status(mid, "failed", timeout=30)
    assert row["attempts"] == 1, "a 400 must not be retried: attempts %r" % row["attempts"]
    assert mp.sim_count(mid) == 0
    sg = json.loads(row["last_error"])
    assert sg["errors"][0]["message"] == SG_400_MESSAGE, sg
    assert sg["errors"][0]["field"] == "from.email", sg

    dead = mp.dead_letters(mid)
    assert len(dead) == 1, dead
    topic, error, payload = dead[0]
    assert topic == MAIL_TOPIC, topic
    assert SG_400_MESSAGE in error, error
    assert json.loads(payload)["message_id"] == mid

    recs = wait_until(lambda: mp.kafka_records(mid, [MAIL_DLQ_TOPIC]), 10,
                      desc="the DLQ record of %s" % mid)
    assert len(recs) == 1, recs
    rec = recs[0]
    assert rec["key"] == mid
    assert SG_400_MESSAGE in rec["headers"].get("error", ""), rec["headers"]
    assert rec["headers"].get("source_topic") == MAIL_TOPIC, rec["headers"]
    value = json.loads(rec["value"])
    assert value["message_id"] == mid
    assert value["request"]["custom_args"]["mailpipe_message_id"] == mid
    # a failed mail stays failed: no later event or retry moves it
    assert mp.message(mid)["status"] == "failed"
    assert sim.faults()["count"] == 0


def test_a_time_out_after_acceptance_is_not_sent_again(mp, sim):
    """Documented behaviour: the simulator accepts the mail (counts it and
    emits its events) but answers only after 15 s; the sender gives up after
    sendgrid.timeout_ms (3 s here) with the request sent, so the send is
    ambiguous and SendGrid has no idempotency key: the sender does not resend.
    The message stays `sending` until SendGrid's events for it are in
    `events` (at once here: they arrive well within the time-out; else it
    checks again when sender.ambiguous_grace_seconds since the attempt began
    are over, and resends only if none came), then it is marked sent with
    SendGrid's X-Message-Id taken from those events. One attempt, one mail at
    SendGrid."""
    mp.wait_sender_idle()
    sim.faults(accept_then_hang_ms=15000, count=1)
    m0 = time.monotonic()
    mid = mp.send_ok(mail_body())
    wait_sim_count(mp, mid, 1, timeout=20)
    x_id = mp.sim_messages(mid)["x_message_ids"][0]

    # the sender's verdict, durable in PostgreSQL: sent_at and SendGrid's id
    row = mp.wait_message(mid, lambda r: r["sent_at"] is not None, 45,
                          "the sender to settle %s as sent" % mid)
    settled = time.monotonic() - m0
    print("settled after %.1fs" % settled)
    assert row["sendgrid_message_id"] == x_id
    assert row["status"] in SENT_OR_BEYOND, row["status"]
    assert row["attempts"] == 1, "attempts %r" % row["attempts"]
    assert mp.sim_count(mid) == 1, "sent again after the time-out"
    # it gave up after the time-out (3 s), not after the simulator's 15 s answer
    assert settled < 15, "settled only after %.1fs" % settled
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=20)
    assert mp.sim_count(mid) == 1

    # its Redis state (spec: <prefix>msg:<id> state) says so as well
    state = mp.redis().hget(REDIS_PREFIX + "msg:" + mid, "state")
    assert state == "sent", "redis state of a message settled as sent: %r" % state


def _hang_with_the_sink_stopped(mp, sim):
    """Arms one accept-then-hang and stops the sink, so that SendGrid's events
    for the next mail stay in Kafka, out of `events`."""
    mp.wait_sender_idle()
    mp.wait_sink_idle()
    sim.faults(accept_then_hang_ms=20000, count=1)
    mp.stack("stop", "sink", timeout=60)


def test_a_time_out_whose_events_come_within_the_grace_is_not_resent(mp, sim):
    """The same time-out, but SendGrid's events reach `events` only after it
    (the sink is stopped until then): the sender keeps the message `sending`,
    checks again once sender.ambiguous_grace_seconds (12 s here) since the
    attempt began are over, finds the events and marks it sent. No resend."""
    stopped = False
    try:
        _hang_with_the_sink_stopped(mp, sim)
        stopped = True
        m0 = time.monotonic()
        mid = mp.send_ok(mail_body())
        wait_sim_count(mp, mid, 1, timeout=20)
        # the sender gave up waiting for the answer and said so
        row = mp.wait_message(mid, lambda r: r["last_error"], SENDGRID_TIMEOUT_S + 15,
                              "the time-out of %s recorded" % mid)
        assert row["status"] == "sending", row["status"]
        assert row["sent_at"] is None
        mp.stack("start", "sink", timeout=60)
        stopped = False
        started = time.monotonic() - m0
        assert started < AMBIGUOUS_GRACE_S - 5, (
            "the sink is back only %.1fs after the send: too late for this test" % started)
    finally:
        if stopped:
            mp.stack("start", "sink", timeout=60, check=False)
    try:
        row = mp.wait_message(mid, lambda r: r["sent_at"] is not None, AMBIGUOUS_GRACE_S + 20,
                              "the sender to settle %s as sent" % mid)
    except AssertionError as e:
        raise AssertionError("%s; simulator count %d" % (e, mp.sim_count(mid))) from None
    settled = time.monotonic() - m0
    print("sink back after %.1fs, settled after %.1fs" % (started, settled))
    assert mp.sim_count(mid) == 1, "resent although its events came within the grace"
    assert row["attempts"] == 1, "attempts %r" % row["attempts"]
    assert row["sendgrid_message_id"] == mp.sim_messages(mid)["x_message_ids"][0]
    assert settled >= AMBIGUOUS_GRACE_S - 1, (
        "settled after %.1fs, before the grace was over" % settled)
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=20)


def test_a_time_out_with_no_events_within_the_grace_is_resent(mp, sim):
    """Documented trade-off: when no event of the mail arrives within the grace
    (the sink is stopped throughout here), the sender cannot tell an accepted
    mail from a lost request and resends it rather than lose it, so SendGrid
    counts it twice. It resends only after the grace, as attempt 2, and the
    second answer's X-Message-Id is the one recorded."""
    stopped = False
    try:
        _hang_with_the_sink_stopped(mp, sim)
        stopped = True
        m0 = time.monotonic()
        mid = mp.send_ok(mail_body())
        wait_sim_count(mp, mid, 1, timeout=20)
        wait_sim_count(mp, mid, 2, timeout=AMBIGUOUS_GRACE_S + 20)
        resent = time.monotonic() - m0
        row = mp.wait_message(mid, lambda r: r["sent_at"] is not None, 20,
                              "the resend of %s recorded" % mid)
        mp.stack("start", "sink", timeout=60)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "sink", timeout=60, check=False)
    print("resent after %.1fs" % resent)
    assert resent >= AMBIGUOUS_GRACE_S - 1, "resent after %.1fs, within the grace" % resent
    assert row["attempts"] == 2, "attempts %r" % row["attempts"]
    x_ids = mp.sim_messages(mid)["x_message_ids"]
    assert row["sendgrid_message_id"] == x_ids[1], (row["sendgrid_message_id"], x_ids)
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=30)
    assert mp.sim_count(mid) == 2
