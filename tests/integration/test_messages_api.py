"""The read API's Email Activity endpoints (build/query behind nginx):
GET /v3/messages?query=...&limit=N[&after=cursor] and GET /v3/messages/{msg_id}, in
SendGrid's shapes, with keyset pagination, query validation and API key checks.

Three mails with a subject tag unique to the run are sent through POST /v3/mail/send
and awaited until delivered; the answers are compared with the messages and events rows.
"""

import uuid

import pytest

from helpers.mailpipe import (DELIVERED_OR_BEYOND, assert_json_error, mail_body,
                              unique_address)

FIELDS = {"msg_id", "from_email", "to_email", "subject", "status", "opens_count",
          "clicks_count", "last_event_time"}


@pytest.fixture(scope="module")
def key(mp):
    return mp.api_key


@pytest.fixture(scope="module")
def sent(mp):
    """Sends three tagged mails and waits until delivered; returns (tag, {id: to})."""
    tag = "msgapi_%s" % uuid.uuid4().hex[:12]
    mails = {}
    for i in range(3):
        to = unique_address()
        body = mail_body(to=to, marker=tag, subject="activity %s #%d" % (tag, i))
        r = mp.send_mail(body)
        assert r.status_code == 202, (r.status_code, r.text[:500])
        mails[r.headers["X-Message-Id"]] = to
    for mid in mails:
        mp.wait_status(mid, DELIVERED_OR_BEYOND, timeout=30)
        mp.wait_events(mid, {"processed", "delivered"}, timeout=30)
    mp.wait_sim_quiet()
    mp.wait_sink_idle()
    return tag, mails


def get(mp, path, key, params=None):
    headers = {"Authorization": "Bearer " + key} if key is not None else {}
    return mp.request("GET", path, params=params, headers=headers)


def get_ok(mp, path, key, params=None):
    r = get(mp, path, key, params)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    return r.json()


def event_count(mp, mid, name):
    return mp.query("select count(*) from events where message_id = %s and event = %s",
                    mid, name)[0][0]


def error_fields(resp):
    return [e.get("field") for e in resp.json()["errors"]]


def test_query_by_subject(mp, key, sent):
    tag, mails = sent
    body = get_ok(mp, "/v3/messages", key,
                  {"query": 'subject LIKE "%%%s%%"' % tag, "limit": "10"})
    assert set(body) == {"messages"}, body  # no next page
    got = {m["msg_id"]: m for m in body["messages"]}
    assert set(got) == set(mails), body
    for mid, m in got.items():
        assert set(m) == FIELDS, m
        row = mp.message(mid)
        assert m["to_email"] == mails[mid]
        assert m["from_email"] == "sender@example.com"
        assert tag in m["subject"]
        assert m["status"] == row["status"] and m["status"] in DELIVERED_OR_BEYOND, m
        assert m["opens_count"] == event_count(mp, mid, "open")
        assert m["clicks_count"] == event_count(mp, mid, "click")
        assert isinstance(m["last_event_time"], str) and m["last_event_time"].endswith("Z")
    # newest first
    created = {mid: mp.message(mid)["created_at"] for mid in mails}
    order = [m["msg_id"] for m in body["messages"]]
    assert order == sorted(order, key=lambda i: (created[i], i), reverse=True)


def test_query_by_to_email(mp, key, sent):
    _, mails = sent
    mid, to = next(iter(mails.items()))
    body = get_ok(mp, "/v3/messages", key, {"query": 'to_email="%s"' % to})
    assert [m["msg_id"] for m in body["messages"]] == [mid], body


def test_pagination_walks_all(mp, key, sent):
    tag, mails = sent
    seen, after, pages = [], None, 0
    while True:
        params = {"query": 'subject LIKE "%%%s%%"' % tag, "limit": "1"}
        if after is not None:
            params["after"] = after
        body = get_ok(mp, "/v3/messages", key, params)
        pages += 1
        assert len(body["messages"]) <= 1, body
        seen += [m["msg_id"] for m in body["messages"]]
        after = body.get("next")
        if after is None:
            break
        assert pages < 10, "pagination does not end"
    assert len(seen) == len(set(seen)) == 3, seen
    assert set(seen) == set(mails)


def test_message_by_id(mp, key, sent):
    _, mails = sent
    mid = next(iter(mails))
    body = get_ok(mp, "/v3/messages/" + mid, key)
    assert body["msg_id"] == mid
    names = [e["event_name"] for e in body["events"]]
    assert "processed" in names and "delivered" in names, body
    assert names.index("processed") < names.index("delivered"), names
    times = [e["processed"] for e in body["events"]]
    assert times == sorted(times), times
    for e in body["events"]:
        assert set(e) == {"event_name", "processed", "reason", "email", "url",
                          "sg_event_id"}, e


def test_unknown_message_is_404(mp, key):
    assert_json_error(get(mp, "/v3/messages/NOSUCHMESSAGE" + uuid.uuid4().hex, key), 404)


@pytest.mark.parametrize("query", ['subject LIKE', 'foo = "x"', 'status LIKE "x%"',
                                   'subject = "x";', ''])
def test_bad_query_is_400(mp, key, query):
    r = get(mp, "/v3/messages", key, {"query": query})
    assert_json_error(r, 400)
    assert error_fields(r) == ["query"], r.text


def test_bad_query_names_position(mp, key):
    r = get(mp, "/v3/messages", key, {"query": 'foo = "x"'})
    assert "unknown field 'foo'" in r.json()["errors"][0]["message"], r.text


def test_sql_injection_has_no_effect(mp, key, sent):
    for q in ['subject="x\' OR 1=1 --"', 'subject="x\\" OR 1=1 --"',
              'msg_id="\'; DROP TABLE messages; --"']:
        body = get_ok(mp, "/v3/messages", key, {"query": q})
        assert body == {"messages": []}, (q, body)
    assert mp.query("select count(*) from messages")[0][0] >= 3


@pytest.mark.parametrize("after", ["zz", "abc", "3a", "00", "6162", "303a",
                                   "30313a78", "313a", "-1"])
def test_bad_cursor_is_400(mp, key, after):
    r = get(mp, "/v3/messages", key, {"query": 'status="delivered"', "after": after})
    assert_json_error(r, 400)
    assert error_fields(r) == ["after"], r.text


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1", ""])
def test_bad_limit_is_400(mp, key, limit):
    r = get(mp, "/v3/messages", key, {"query": 'status="delivered"', "limit": limit})
    assert_json_error(r, 400)
    assert error_fields(r) == ["limit"], r.text


@pytest.mark.parametrize("path", ["/v3/messages"])
def test_messages_need_a_key(mp, path):
    r = get(mp, path, None, {"query": 'status="delivered"'})
    assert_json_error(r, 401)
