"""Regressions for what fuzzing mailpipe (make fuzz, tests/fuzz) turned up outside lib/,
in the HTTP handlers: POST /v3/mail/send answers a body the validator must refuse with
SendGrid's 400, never 503 and never by quietly fixing the body.

(The lib/ findings replay as fixtures in the unit tests.)
"""

from helpers.mailpipe import assert_json_error, mail_body


def test_a_json_array_body_is_400_not_503(mp):
    # ingest used to add its message id to custom_args before validating, which fails
    # on an array: 503 "cannot assign a message id", so clients retried it forever
    for raw in (b"[]", b'[{"personalizations": []}]'):
        errors = assert_json_error(mp.send_mail(raw), 400)["errors"]
        assert any("Expected: object, given: array" in e["message"] for e in errors), errors


def test_custom_args_that_are_not_an_object_are_400(mp):
    # they used to be replaced by {"mailpipe_message_id": ...} and the mail accepted
    for bad in ("x", ["a"], 7, None):
        body = mail_body(sandbox=True, custom_args=bad)
        errors = assert_json_error(mp.send_mail(body), 400)["errors"]
        assert [e["field"] for e in errors] == ["custom_args"], (bad, errors)


# '\' then 'é': jansson's error quotes the body near the error, cut inside the 'é'
BAD_ESCAPE_BEFORE_UTF8 = b'[{"a":"\\\xc3\xa9"}]'


def test_a_json_error_quoting_half_a_character_still_has_an_error_body(mp):
    # the webhook and mail send answered 400 with an empty body: the message was not
    # UTF-8, so no JSON error entry could hold it
    r = mp.post_webhook(BAD_ESCAPE_BEFORE_UTF8)
    errors = assert_json_error(r, 400)["errors"]
    assert "invalid escape" in errors[0]["message"], errors
    r = mp.send_mail(BAD_ESCAPE_BEFORE_UTF8[1:-1])
    errors = assert_json_error(r, 400)["errors"]
    assert "invalid escape" in errors[0]["message"], errors
