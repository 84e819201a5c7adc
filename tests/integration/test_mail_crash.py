"""The sender killed with SIGKILL while it works through 1,000 mails: after
the supervisor restarts it every mail is sent exactly once, counted at the
simulator. Also: a message's status never moves backwards, and no API key
ever reaches a log.
"""

import concurrent.futures
import os
import signal
import time
import uuid

from helpers.mailpipe import assert_accepted, mail_body, unique_address, wait_until

TOTAL = 1000


def run_sent(mp, run):
    """Mails of this run SendGrid took so far."""
    return mp.query("select count(*) from messages"
                    " where request->'custom_args'->>'crash_run' = %s"
                    " and status_rank >= 20 and status not in ('failed', 'suppressed')",
                    run)[0][0]


def sent_so_far(mp, ids):
    return mp.query("select count(*) from messages where message_id = any(%s)"
                    " and status_rank >= 20 and status not in ('failed', 'suppressed')",
                    list(ids))[0][0]


def test_sender_killed_mid_run_sends_every_mail_exactly_once(mp, sim):
    mp.wait_sender_idle()
    run = uuid.uuid4().hex[:12]
    # a little latency per send keeps the sender busy long enough to be killed
    # in the middle of the run
    sim.faults(latency_ms=5)
    ids = []

    def send(i):
        body = mail_body(to="crash%d-%s@example.com" % (i, run),
                         custom_args={"crash_run": run, "crash_seq": str(i)})
        r = mp.send_mail(body, timeout=60)
        assert r.status_code == 202, "mail %d: %d %r" % (i, r.status_code, r.text[:200])
        return r.headers["X-Message-Id"]

    old = mp.wait_pid("sender")
    pool = concurrent.futures.ThreadPoolExecutor(16)
    try:
        futures = [pool.submit(send, i) for i in range(TOTAL)]
        # kill once the sender is visibly sending this run's mails
        first = [f.result(timeout=120) for f in futures[:300]]
        wait_until(lambda: run_sent(mp, run) >= 100, 60, interval=0.05,
                   desc="100 mails of the run sent before the kill")
        os.kill(old, signal.SIGKILL)
        at_kill = run_sent(mp, run)
        ids = first + [f.result(timeout=120) for f in futures[300:]]
    finally:
        pool.shutdown(wait=True)
    assert len(set(ids)) == TOTAL
    print("sender %d killed with %d of %d mails sent" % (old, at_kill, TOTAL))
    assert at_kill < TOTAL, "the run was over before the kill"

    new = mp.wait_pid("sender", not_pid=old, timeout=30)
    assert new != old
    sim.faults(latency_ms=0)

    def all_sent():
        n = sent_so_far(mp, ids)
        if n < TOTAL:
            raise AssertionError("%d of %d sent" % (n, TOTAL))
        return n
    wait_until(all_sent, 150, interval=0.5, desc="every mail of the run sent")

    def count(mid):
        return mid, mp.sim_count(mid)
    with concurrent.futures.ThreadPoolExecutor(8) as p:
        counts = dict(p.map(count, ids))
    lost = [m for m, n in counts.items() if n == 0]
    dup = {m: n for m, n in counts.items() if n > 1}
    assert not lost and not dup, "%d lost (e.g. %s), %d sent more than once (e.g. %s)" % (
        len(lost), lost[:3], len(dup), list(dup.items())[:3])
    # each sent mail records SendGrid's X-Message-Id, also one cut off by the kill
    # (then taken from its events)
    missing = mp.query("select message_id, status, attempts from messages"
                       " where message_id = any(%s) and (sendgrid_message_id is null"
                       " or sent_at is null)", ids)
    assert not missing, "%d sent mails without sendgrid_message_id/sent_at: %r" % (
        len(missing), missing[:5])
    rows = mp.query("select count(distinct sendgrid_message_id) from messages"
                    " where message_id = any(%s)", ids)
    assert rows[0][0] == TOTAL


def test_a_late_delivered_never_overwrites_open(mp, tag, make_event):
    # defer+: processed, deferred, delivered and no engagement from the simulator
    to = unique_address("defer+")
    mid = mp.send_ok(mail_body(to=to))
    mp.wait_events(mid, {"processed", "deferred", "delivered"}, timeout=20)
    row = mp.wait_message(mid, lambda r: r["sendgrid_message_id"], 10)
    assert row["status"] == "delivered", row["status"]
    sg_id = row["sendgrid_message_id"] + ".filterdrecv-0"
    now = int(time.time())

    opened = make_event(event="open", email=to, sg_message_id=sg_id, timestamp=now,
                        mailpipe_message_id=mid, useragent="Mozilla/5.0")
    assert_accepted(mp.post_webhook([opened]), 1)
    mp.wait_status(mid, "open", timeout=20)

    # SendGrid retries and reorders: a delivered (and a processed) arriving late
    late = [make_event(event="delivered", email=to, sg_message_id=sg_id,
                       timestamp=now - 60, mailpipe_message_id=mid),
            make_event(event="processed", email=to, sg_message_id=sg_id,
                       timestamp=now - 61, mailpipe_message_id=mid)]
    assert_accepted(mp.post_webhook(late), 2)
    mp.wait_rows(tag, 3)
    mp.wait_sink_idle()
    row = mp.message(mid)
    assert row["status"] == "open", "a late event moved the status back to %r" % row["status"]
    # a later click still moves it on
    click = make_event(event="click", email=to, sg_message_id=sg_id, timestamp=now + 1,
                       mailpipe_message_id=mid, url="https://example.com/")
    assert_accepted(mp.post_webhook([click]), 1)
    mp.wait_status(mid, "click", timeout=20)
    assert mp.sim_count(mid) == 1


def test_no_api_key_is_in_any_log(mp):
    """Last of the mail tests: every key they used, and the SendGrid key the
    sender uses, must be absent from every file under <run>/logs."""
    secrets = set(mp.secrets) | {mp.api_key, mp.sim_key}
    found = {}
    for key in sorted(secrets):
        parts = {key}
        if key.startswith("mp_"):
            parts.add(key.split("_", 2)[2])     # the secret part alone
        for part in parts:
            hits = mp.logs_containing(part)
            if hits:
                found[key[:12] + "..."] = hits
    assert not found, "API keys in logs: %r" % found
