"""POST /v3/mail/send end to end, against the SendGrid simulator: the answer,
the queued request, the send, the events that come back and the status they
give the message.
"""

import datetime
import json
import subprocess
import time
import uuid

from helpers.mailpipe import (DELIVERED_OR_BEYOND, MAIL_TOPIC, SENT_OR_BEYOND, ULID_RE,
                              assert_accepted, mail_body, unique_address, wait_until)


def without_our_id(request):
    """A stored request with the custom arg mailpipe adds taken out again."""
    req = json.loads(json.dumps(request))
    args = req.get("custom_args", {})
    args.pop("mailpipe_message_id", None)
    if not args:
        req.pop("custom_args", None)
    return req


def test_send_is_202_then_delivered_with_its_events(mp):
    marker = uuid.uuid4().hex
    body = mail_body(marker=marker, categories=["integration"])
    r = mp.send_mail(body)
    assert r.status_code == 202, "expected 202, got %d: %r" % (r.status_code, r.text[:500])
    assert r.content == b"", "202 must have an empty body, got %r" % r.content[:200]
    mid = r.headers.get("X-Message-Id", "")
    assert ULID_RE.match(mid), "X-Message-Id %r is not a 26-character ULID" % mid

    # the request was queued once, keyed by our id, with the id in custom_args
    recs = mp.kafka_records(marker, [MAIL_TOPIC])
    assert len(recs) == 1, "records of the mail on %s: %r" % (MAIL_TOPIC, recs)
    assert recs[0]["key"] == mid
    queued = json.loads(recs[0]["value"])
    assert queued["message_id"] == mid
    assert queued["request"]["custom_args"] == {"test_marker": marker,
                                                "mailpipe_message_id": mid}

    row = mp.wait_status(mid, DELIVERED_OR_BEYOND, timeout=20)
    evs = mp.wait_events(mid, {"processed", "delivered"}, timeout=20)
    to = body["personalizations"][0]["to"][0]["email"]
    assert {e[1] for e in evs} == {to}, evs

    row = mp.wait_message(mid, lambda r: r["sendgrid_message_id"], 10,
                          "messages.sendgrid_message_id of %s" % mid)
    sim = mp.sim_messages(mid)
    assert sim["count"] == 1, "the simulator accepted %s %d times" % (mid, sim["count"])
    assert row["sendgrid_message_id"] == sim["x_message_ids"][0]
    # SendGrid's sg_message_id starts with the X-Message-Id it answered
    for ev in evs:
        assert ev[3].startswith(row["sendgrid_message_id"] + "."), ev
    assert row["attempts"] == 1, row["attempts"]
    assert row["sent_at"] is not None
    assert row["to_emails"] == [to]
    assert row["request"]["custom_args"]["mailpipe_message_id"] == mid


def test_send_with_curl(mp):
    """The README's way: curl with the CA, the dev key and a JSON body."""
    body = json.dumps(mail_body())
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--cacert", mp.vars["MAILPIPE_CA"],
         "-D", "-", "-o", "/dev/null", "-X", "POST", mp.url + "/v3/mail/send",
         "-H", "Authorization: Bearer " + mp.api_key,
         "-H", "Content-Type: application/json", "--data-binary", "@-"],
        input=body, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
        check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and " 202" in lines[0], out.stdout
    ids = [l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("x-message-id:")]
    assert len(ids) == 1 and ULID_RE.match(ids[0]), out.stdout
    mp.wait_status(ids[0], DELIVERED_OR_BEYOND, timeout=20)
    mp.wait_events(ids[0], {"processed", "delivered"})


def test_sandbox_mode_is_200_and_sends_nothing(mp):
    marker = uuid.uuid4().hex
    r = mp.send_mail(mail_body(marker=marker, sandbox=True))
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:500])
    # nothing produced (ingest answers only after Kafka acknowledged, so a
    # record would already be there), so nothing can reach the simulator
    assert mp.kafka_records(marker, [MAIL_TOPIC]) == []
    assert mp.messages_by_marker(marker) == []
    # a normal mail with a marker of its own is visible the same way
    other = uuid.uuid4().hex
    mid = mp.send_ok(mail_body(marker=other))
    assert len(mp.kafka_records(other, [MAIL_TOPIC])) == 1
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=20)
    assert mp.messages_by_marker(marker) == []


def test_the_body_the_official_python_client_sends_is_accepted_unchanged(mp):
    """sendgrid-python 6.x: Mail(from_email=From(...), to_emails=To(..., name),
    subject, plain_text_content, html_content) plus Category and CustomArg,
    posted by python_http_client: json.dumps() with its default separators,
    Email.get() puts "name" before "email", Mail.get() orders the keys from,
    subject, personalizations, content, categories, custom_args."""
    to = unique_address()
    campaign = uuid.uuid4().hex
    sent = {
        "from": {"name": "Example Sender", "email": "sender@example.com"},
        "subject": "Sending with Twilio SendGrid is Fun",
        "personalizations": [{"to": [{"name": "Example Recipient", "email": to}]}],
        "content": [
            {"type": "text/plain", "value": "and easy to do anywhere, even with Python"},
            {"type": "text/html",
             "value": "<strong>and easy to do anywhere, even with Python</strong>"},
        ],
        "categories": ["welcome", "onboarding"],
        "custom_args": {"campaign": campaign, "user_id": "42"},
    }
    raw = json.dumps(sent).encode("utf-8")
    headers = {"User-Agent": "sendgrid/6.11.0;python", "Accept": "application/json",
               "Content-Type": "application/json"}
    r = mp.send_mail(raw, headers=headers)
    assert r.status_code == 202, "expected 202, got %d: %r" % (r.status_code, r.text[:500])
    mid = r.headers.get("X-Message-Id", "")
    assert ULID_RE.match(mid), mid

    row = mp.wait_status(mid, DELIVERED_OR_BEYOND, timeout=20)
    assert without_our_id(row["request"]) == sent
    assert row["request"]["custom_args"]["mailpipe_message_id"] == mid
    assert row["subject"] == sent["subject"]
    assert row["from_email"] == "sender@example.com"
    assert row["to_emails"] == [to]
    assert row["categories"] == ["welcome", "onboarding"]
    # the events carry the categories and the mail's custom args back
    mp.wait_events(mid, {"processed", "delivered"})
    evs = mp.query("select event, category, raw->>'campaign', raw->>'user_id' from events"
                   " where message_id = %s", mid)
    for ev in evs:
        assert ev[1] == ["welcome", "onboarding"], ev
        assert ev[2:] == (campaign, "42"), ev
    assert mp.sim_count(mid) == 1


def test_an_event_without_custom_args_finds_its_message_by_sendgrid_id(mp, tag, make_event):
    # defer+: processed, deferred, delivered and nothing after, so a click can
    # only come from the event posted here
    to = unique_address("defer+")
    mid = mp.send_ok(mail_body(to=to))
    mp.wait_events(mid, {"processed", "deferred", "delivered"}, timeout=20)
    row = mp.wait_message(mid, lambda r: r["sendgrid_message_id"], 10)
    assert row["status"] == "delivered", row["status"]

    ev = make_event(event="click", email=to, url="https://example.com/",
                    sg_message_id=row["sendgrid_message_id"] + ".filterdrecv-7-1",
                    timestamp=int(time.time()))
    assert "mailpipe_message_id" not in ev
    assert_accepted(mp.post_webhook([ev]), 1)
    mp.wait_rows(tag, 1)
    mp.wait_status(mid, "click", timeout=20)


def test_custom_args_near_the_limit_are_refused_or_sent_never_accepted_then_failed(mp):
    """custom_args of 9,990 bytes are valid for SendGrid. mailpipe adds
    mailpipe_message_id to them, which pushes them past the 10,000 bytes
    SendGrid allows: it must either refuse the mail at once (400) or still get
    it sent; answering 202 and then failing it with SendGrid's 400 is wrong."""
    pad = "x" * (9990 - len('{"pad":""}'))
    body = mail_body(custom_args={"pad": pad})
    assert len(json.dumps(body["custom_args"], separators=(",", ":"))) == 9990
    r = mp.send_mail(body)
    if r.status_code == 400:
        errors = r.json()["errors"]
        assert any(e["field"] == "custom_args" for e in errors), errors
        return
    assert r.status_code == 202, "expected 202 or 400, got %d: %r" % (
        r.status_code, r.text[:500])
    mid = r.headers["X-Message-Id"]
    row = mp.wait_status(mid, SENT_OR_BEYOND + ("failed",), timeout=20)
    assert row["status"] != "failed", (
        "accepted with 202, then failed: %s" % (row["last_error"] or "")[:300])


def test_a_large_mail_under_30_mb_is_sent(mp):
    """SendGrid takes whole messages up to 30 MB: a 3 MB attachment must be
    accepted and sent, not refused because of an internal size limit."""
    data = ("QUJD" * (3 * 1024 * 1024 // 4))    # 3 MB of valid base64
    body = mail_body(attachments=[{"content": data, "filename": "big.bin",
                                   "type": "application/octet-stream"}])
    r = mp.send_mail(body, timeout=60)
    assert r.status_code == 202, "expected 202, got %d: %r" % (r.status_code, r.text[:500])
    mid = r.headers["X-Message-Id"]
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=30)
    assert mp.sim_count(mid) == 1


def test_status_and_timestamps_are_sane(mp):
    mid = mp.send_ok(mail_body())
    row = mp.wait_status(mid, DELIVERED_OR_BEYOND, timeout=20)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert row["created_at"] <= row["sent_at"] <= now
    assert row["last_event_time"] is not None
    # ULIDs are time-ordered: a later mail sorts after this one
    later = mp.send_ok(mail_body())
    assert later > mid
    wait_until(lambda: mp.message(later) is not None, 20, desc="row of the later mail")
