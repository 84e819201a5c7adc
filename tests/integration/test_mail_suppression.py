"""Suppressions: a hard bounce or a spam report (events from the simulator,
stored by the sink) suppresses the address; mail to it is then not sent
(status suppressed, nothing at SendGrid) until `mailpipectl suppression
remove` lets it through again.
"""

import uuid

from helpers.mailpipe import (DELIVERED_OR_BEYOND, REDIS_PREFIX, mail_body,
                              unique_address, wait_until)


def suppression(mp, email):
    rows = mp.query("select email, reason, source_event from suppressions where email = %s",
                    email.lower())
    return rows[0] if rows else None


def wait_suppressed(mp, email, reason):
    row = wait_until(lambda: suppression(mp, email), 20,
                     desc="a suppressions row for %s" % email)
    assert row[1] == reason, row
    assert row[2], "no source event: %r" % (row,)
    src = mp.query("select event, email from events where sg_event_id = %s", row[2])
    assert src and src[0][0] == reason, src
    return row


def test_a_bounced_address_is_not_sent_to_until_removed(mp):
    addr = unique_address("bounce+")
    first = mp.send_ok(mail_body(to=addr))
    row = mp.wait_status(first, "bounce", timeout=20)
    assert mp.sim_count(first) == 1
    wait_suppressed(mp, addr, "bounce")
    r = mp.redis()
    wait_until(lambda: r.sismember(REDIS_PREFIX + "suppressed", addr.lower()), 10,
               desc="%s in the redis set" % addr)

    # the same address in other letter case: suppressed, never at SendGrid
    second = mp.send_ok(mail_body(to=addr.upper().replace("@EXAMPLE.COM", "@Example.com")))
    row = mp.wait_status(second, "suppressed", timeout=20)
    assert mp.sim_count(second) == 0
    assert row["sendgrid_message_id"] is None

    # with a second recipient: sent, to that one only
    other = unique_address()
    both = mp.send_ok(mail_body(to=[addr, other]))
    mp.wait_status(both, DELIVERED_OR_BEYOND, timeout=20)
    assert mp.sim_count(both) == 1
    evs = mp.wait_events(both, {"processed", "delivered"})
    assert {e[1] for e in evs} == {other}, "events for a suppressed recipient: %r" % evs

    out = mp.mailpipectl("suppression", "remove", addr)
    assert addr.lower() in out.stdout, out.stdout
    assert suppression(mp, addr) is None
    assert not r.sismember(REDIS_PREFIX + "suppressed", addr.lower())
    # removing it again says it is not suppressed
    assert mp.mailpipectl("suppression", "remove", addr, check=False).returncode != 0

    third = mp.send_ok(mail_body(to=addr))
    mp.wait_status(third, "bounce", timeout=20)
    assert mp.sim_count(third) == 1
    # and the new bounce suppresses it again
    wait_suppressed(mp, addr, "bounce")
    # the mail that was suppressed stays so
    assert mp.message(second)["status"] == "suppressed"
    assert mp.sim_count(second) == 0


def test_a_spam_report_suppresses_the_address(mp):
    addr = unique_address("spam+")
    first = mp.send_ok(mail_body(to=addr))
    mp.wait_status(first, "spamreport", timeout=20)
    wait_suppressed(mp, addr, "spamreport")
    listed = mp.mailpipectl("suppression", "list", "--reason", "spamreport").stdout
    assert addr.lower() in listed, listed

    second = mp.send_ok(mail_body(to=addr))
    mp.wait_status(second, "suppressed", timeout=20)
    assert mp.sim_count(second) == 0


def test_a_blocked_bounce_does_not_suppress(mp):
    # type "blocked" is a temporary reputation problem, not a bad address
    addr = unique_address("block+")
    first = mp.send_ok(mail_body(to=addr))
    mp.wait_status(first, "blocked", timeout=20)
    mp.wait_events(first, {"processed", "bounce"})
    mp.wait_sink_idle()
    assert suppression(mp, addr) is None
    second = mp.send_ok(mail_body(to=addr, custom_args={"n": uuid.uuid4().hex}))
    mp.wait_status(second, "blocked", timeout=20)
    assert mp.sim_count(second) == 1
