"""POST /v3/mail/send refuses what SendGrid refuses, with SendGrid's error
entries: {"errors":[{"message","field","help"}]}, every problem listed, dotted
field paths; 415 for invalid UTF-8, 413 over 30 MB; API keys (401, 403).

Bodies that should be refused carry sandbox mode wherever the rule allows, so
that one accepted by mistake is answered 200 and never sent.
"""

import time
import uuid

import pytest

from helpers.mailpipe import (INVALID_GRANT, MAIL_TOPIC, assert_json_error, mail_body,
                              wait_until)


def errors_of(resp):
    return assert_json_error(resp, 400)["errors"]


def assert_entries(resp, expected, exact=True):
    """resp is 400 and lists an entry for each (field, message substring) of
    expected; exact: and no other entry."""
    errors = errors_of(resp)
    for field, text in expected:
        hits = [e for e in errors if e["field"] == field and text in e["message"]]
        assert hits, "no error with field %r and message containing %r in %r" % (
            field, text, errors)
    if exact:
        assert len(errors) == len(expected), "unexpected extra errors: %r" % errors
    return errors


def sandboxed(**top):
    return mail_body(sandbox=True, **top)


def addrs(n, prefix="r"):
    tag = uuid.uuid4().hex[:8]
    return [{"email": "%s%d-%s@example.com" % (prefix, i, tag)} for i in range(n)]


def test_a_valid_sandboxed_body_is_200(mp):
    r = mp.send_mail(sandboxed())
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:500])


def _missing_personalizations(b):
    del b["personalizations"]


def _empty_to(b):
    b["personalizations"][0]["to"] = []


def _bad_second_address(b):
    b["personalizations"][0]["to"] = [{"email": "ok@example.com"},
                                      {"email": "not-an-address"}]


def _duplicate_address(b):
    b["personalizations"][0]["to"] = [{"email": "dup@example.com"},
                                      {"email": "other@example.com"},
                                      {"email": "dup@example.com"}]


def _duplicate_across_to_and_cc(b):
    b["personalizations"][0]["to"] = [{"email": "dup@example.com"}]
    b["personalizations"][0]["cc"] = [{"email": "DUP@example.com"}]


def _eleven_categories(b):
    b["categories"] = ["c%d" % i for i in range(11)]


def _custom_args_10000_bytes(b):
    # {"k":"..."} compact: 8 bytes + the value
    b["custom_args"] = {"k": "v" * (10000 - 8)}


def _send_at_too_far(b):
    b["send_at"] = int(time.time()) + 72 * 3600 + 600


def _missing_from(b):
    del b["from"]


def _unicode_from(b):
    b["from"] = {"email": "j\u00f6rg@example.com"}


def _crlf_subject(b):
    b["subject"] = "Hello\r\nBcc: victim@example.com"


def _lf_personalization_subject(b):
    b["personalizations"][0]["subject"] = "Hello\nBcc: victim@example.com"


def _crlf_header(b):
    b["headers"] = {"X-Campaign": "spring\r\nBcc: victim@example.com"}


def _crlf_personalization_header(b):
    b["personalizations"][0]["headers"] = {"X-Campaign": "a\rb"}


def _html_before_plain(b):
    b["content"] = [{"type": "text/html", "value": "<p>hi</p>"},
                    {"type": "text/plain", "value": "hi"}]


RULES = [
    # (id, mutate, [(field, message substring)])
    ("missing_personalizations", _missing_personalizations,
     [("personalizations", "personalizations field is required")]),
    ("empty_to", _empty_to,
     [("personalizations.0.to", "must at least have an email parameter")]),
    ("bad_address", _bad_second_address,
     [("personalizations.0.to.1.email", "Does not contain a valid address")]),
    ("duplicate_address", _duplicate_address,
     [("personalizations.0.to.2.email", "dup@example.com")]),
    ("duplicate_to_cc", _duplicate_across_to_and_cc,
     [("personalizations.0.cc.0.email", "more than once")]),
    ("eleven_categories", _eleven_categories, [("categories", "limit of 10 categories")]),
    ("custom_args_size", _custom_args_10000_bytes, [("custom_args", "10,000 bytes")]),
    ("send_at_72h", _send_at_too_far, [("send_at", "72 hours")]),
    ("missing_from", _missing_from, [("from.email", "from object must be provided")]),
    ("unicode_from", _unicode_from, [("from.email", "Unicode")]),
    ("crlf_subject", _crlf_subject, [("subject", "CRLF")]),
    ("lf_personalization_subject", _lf_personalization_subject,
     [("personalizations.0.subject", "CRLF")]),
    ("crlf_header", _crlf_header, [("headers.X-Campaign", "CRLF")]),
    ("cr_personalization_header", _crlf_personalization_header,
     [("personalizations.0.headers.X-Campaign", "CRLF")]),
]


@pytest.mark.parametrize("mutate,expected", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_rule_gives_its_error_entry(mp, mutate, expected):
    body = sandboxed()
    mutate(body)
    assert_entries(mp.send_mail(body), expected)


def test_content_text_plain_must_come_first(mp):
    body = sandboxed()
    _html_before_plain(body)
    errors = errors_of(mp.send_mail(body))
    assert len(errors) == 1, errors
    assert errors[0]["field"] in ("content.0.type", "content.1.type"), errors
    assert "text/plain needs to be first" in errors[0]["message"], errors


def test_1001_personalizations(mp):
    body = sandboxed(personalizations=[{"to": [a]} for a in addrs(1001)])
    errors = errors_of(mp.send_mail(body))
    assert any(e["field"] == "personalizations" and "1000 personalizations" in e["message"]
               and "1001" in e["message"] for e in errors), errors
    # 1001 personalizations of one recipient each are also 1001 recipients
    assert {e["field"] for e in errors} == {"personalizations"}, errors


def test_1000_personalizations_and_recipients_are_fine(mp):
    body = sandboxed(personalizations=[{"to": [a]} for a in addrs(1000)])
    r = mp.send_mail(body)
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:500])


def test_1001_recipients_across_to_cc_bcc_and_personalizations(mp):
    a = addrs(1001)
    body = sandboxed(personalizations=[
        {"to": a[:400], "cc": a[400:700]},
        {"to": a[700:900], "bcc": a[900:]},
    ])
    assert_entries(mp.send_mail(body), [("personalizations", "1000 total recipients")])
    # one fewer is fine
    body["personalizations"][1]["bcc"] = a[900:1000]
    r = mp.send_mail(body)
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:500])


def test_custom_args_well_under_10000_bytes_are_fine(mp):
    # not 9,999: mailpipe_message_id (about 51 bytes) counts against the limit too
    body = sandboxed(custom_args={"k": "v" * (9900 - 8)})
    r = mp.send_mail(body)
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:500])


def test_send_at_within_72_hours_is_fine(mp):
    body = sandboxed(send_at=int(time.time()) + 71 * 3600)
    r = mp.send_mail(body)
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:500])


def test_every_problem_of_a_body_is_listed(mp):
    # no sandbox here: an invalid body must never be queued either
    marker = uuid.uuid4().hex
    body = mail_body(marker=marker)
    del body["from"]
    body["personalizations"][0]["to"].append({"email": "nope"})
    body["subject"] = "a\r\nb"
    body["categories"] = ["c%d" % i for i in range(11)]
    body["content"] = [{"type": "text/html", "value": "<p>x</p>"},
                       {"type": "text/plain", "value": "x"}]
    errors = errors_of(mp.send_mail(body))
    fields = {e["field"] for e in errors}
    want = {"from.email", "personalizations.0.to.1.email", "subject", "categories"}
    assert want <= fields, errors
    assert fields - want <= {"content.0.type", "content.1.type"} and len(fields) == 5, errors
    assert mp.kafka_records(marker, [MAIL_TOPIC]) == []


def test_invalid_utf8_is_415(mp):
    raw = (b'{"personalizations":[{"to":[{"email":"a@example.com"}]}],'
           b'"from":{"email":"s@example.com"},"subject":"caf\xe9 \xff",'
           b'"content":[{"type":"text/plain","value":"x"}],'
           b'"mail_settings":{"sandbox_mode":{"enable":true}}}')
    assert_json_error(mp.send_mail(raw), 415)


def test_not_json_is_400(mp):
    assert_json_error(mp.send_mail(b'{"personalizations": ['), 400)


def test_over_30_mb_is_413(mp):
    # 30 MiB is the most ingest reads; nginx must refuse more before ingest
    body = b'{"x":"' + b"a" * (31 * 1024 * 1024) + b'"}'
    assert_json_error(mp.send_mail(body, timeout=120), 413)


def test_29_mb_is_not_refused_for_its_size(mp):
    pad = "x" * (29 * 1000 * 1000)
    body = sandboxed(content=[{"type": "text/plain", "value": pad}])
    r = mp.send_mail(body, timeout=120)
    assert r.status_code == 200, "expected 200, got %d: %r" % (r.status_code, r.text[:300])


# --- API keys ----------------------------------------------------------------

def test_no_key_is_401(mp):
    r = mp.send_mail(sandboxed(), key=False)
    assert_json_error(r, 401)


@pytest.mark.parametrize("authorization", [
    "Bearer mp_abcdefgh_" + "A" * 43,           # well formed, unknown
    "Bearer SG.not-a-mailpipe-key",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
], ids=["unknown", "sendgrid_style", "empty", "basic"])
def test_a_bad_key_is_401(mp, authorization):
    r = mp.send_mail(sandboxed(), key=False, headers={"Authorization": authorization})
    body = assert_json_error(r, 401)
    if authorization.startswith("Bearer mp_"):
        mp.secrets.add(authorization[len("Bearer "):])
        assert body["errors"][0]["message"] == INVALID_GRANT, body


def test_a_key_with_one_character_changed_is_401(mp):
    key = mp.api_key
    r = mp.send_mail(sandboxed(), key=key[:-1] + ("a" if key[-1] != "a" else "b"))
    assert assert_json_error(r, 401)["errors"][0]["message"] == INVALID_GRANT


def test_a_revoked_key_is_401_within_the_refresh(mp):
    key, key_id = mp.create_api_key("revoke-me-%s" % uuid.uuid4().hex[:6], "mail.send")
    r = mp.wait_key_loaded(key)
    assert r.status_code == 200, "a new mail.send key: %d %r" % (r.status_code, r.text[:300])
    # a real send works with it
    mp.send_ok(mail_body(), key=key)

    out = mp.mailpipectl("apikey", "revoke", str(key_id))
    assert "revoked" in out.stdout, out.stdout
    listed = mp.mailpipectl("apikey", "list").stdout
    assert key not in listed and key.split("_", 2)[2] not in listed, "apikey list shows the key"

    t0 = time.monotonic()

    def refused():
        r = mp.send_mail(sandboxed(), key=key)
        return [r] if r.status_code == 401 else None     # a 4xx Response is falsy
    resp = wait_until(refused, 12, interval=0.2,
                      desc="401 for a revoked key (auth.refresh_seconds is 5)")[0]
    body = assert_json_error(resp, 401)
    assert body["errors"][0]["message"] == INVALID_GRANT, body
    print("revoked key refused after %.1fs" % (time.monotonic() - t0))
    # and it stays refused
    assert mp.send_mail(mail_body(), key=key).status_code == 401


def test_a_key_without_mail_send_is_403(mp):
    key, _ = mp.create_api_key("stats-only-%s" % uuid.uuid4().hex[:6], "stats.read")
    r = mp.wait_key_loaded(key)
    assert_json_error(r, 403)
    marker = uuid.uuid4().hex
    assert_json_error(mp.send_mail(mail_body(marker=marker), key=key), 403)
    assert mp.kafka_records(marker, [MAIL_TOPIC]) == []


def test_keys_are_not_in_any_log(mp):
    # every key this module used, after all of the above was logged
    secrets = set(mp.secrets) | {mp.api_key}
    for key in sorted(secrets):
        assert mp.logs_containing(key) == [], "an API key is in %s" % mp.logs_containing(key)
        secret_part = key.split("_", 2)[-1]
        assert mp.logs_containing(secret_part) == [], (
            "the secret part of an API key is in %s" % mp.logs_containing(secret_part))


@pytest.mark.parametrize("args", [("list",), ("revoke", "1"),
                                  ("create", "--name", "x", "--scopes", "mail.send")])
def test_apikey_commands_exit_1_when_the_database_is_away(mp, args):
    """A database failure is exit 1 (failed), not 2 (bad command line)."""
    p = mp.mailpipectl("apikey", *args, "--database-url",
                       "postgresql://mailpipe@127.0.0.1:1/none?connect_timeout=2", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "127.0.0.1" in p.stderr or "connect" in p.stderr, p.stderr
