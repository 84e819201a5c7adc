"""The read API's Email Activity endpoints (build/query behind nginx):
GET /v3/messages?query=...&limit=N[&after=cursor] and GET /v3/messages/{msg_id}, in
SendGrid's shapes, with keyset pagination, query validation and API key checks.

Three mails with a subject tag unique to the run are sent through POST /v3/mail/send
and awaited until delivered; the answers are compared with the messages and events rows.
"""

import datetime
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


# --- last_event_time windows far in the past ------------------------------------------------
# fcgi/query_messages.c answers a query whose matches lie in a last_event_time window with a
# plan of its own: a window of at most WINDOW_SORT_MAX (2048) messages is read whole and
# sorted, a larger one is walked newest first from the window's end (or from the creation of
# a message whose last event came before it, sql/016).  Messages are inserted straight into
# the table, years before any mail of the run, so that every mail the tests send is newer
# and the windows hold exactly these rows.  The answers must be what the plain newest-first
# walk gives: the same rows, ordered by (created_at, message_id) descending, page after page.

WINDOW_SORT_MAX = 2048
UTC = datetime.timezone.utc


def _t(*a):
    return datetime.datetime(*a, tzinfo=UTC)


def _insert(mp, rows):
    """rows: (message_id, from_email, created_at, last_event_time or None)."""
    mp.query("INSERT INTO messages (message_id, from_email, to_emails, subject, request,"
             " status, status_rank, created_at, last_event_time)"
             " SELECT i, f, ARRAY['window@example.com'], 'window test', '{}', 'delivered',"
             " 40, c, l FROM unnest(%s::text[], %s::text[], %s::timestamptz[],"
             " %s::timestamptz[]) AS r(i, f, c, l)",
             [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
             [r[3] for r in rows])


def _expected(rows, lo, hi, sender=None):
    hit = [r for r in rows if r[3] is not None and lo <= r[3] <= hi
           and (sender is None or r[1] == sender)]
    return [r[0] for r in sorted(hit, key=lambda r: (r[2], r[0]), reverse=True)]


def _walk(mp, key, query, limit, max_pages=100):
    """The ids of every page (of the first max_pages) and whether more were left."""
    ids, after, pages = [], None, 0
    while True:
        params = {"query": query, "limit": str(limit)}
        if after is not None:
            params["after"] = after
        body = get_ok(mp, "/v3/messages", key, params)
        pages += 1
        assert len(body["messages"]) <= limit, body
        ids += [m["msg_id"] for m in body["messages"]]
        after = body.get("next")
        if after is None or pages == max_pages:
            return ids, after is not None
        assert len(body["messages"]) == limit, body


def _between(lo, hi):
    return "last_event_time BETWEEN TIMESTAMP \"%s\" AND TIMESTAMP \"%s\"" % (
        lo.strftime("%Y-%m-%dT%H:%M:%SZ"), hi.strftime("%Y-%m-%dT%H:%M:%SZ"))


@pytest.fixture(scope="module")
def old_window(mp):
    """A one-day window in 2001 and messages around it; removed afterwards."""
    tag = "lew%s" % uuid.uuid4().hex[:10]
    sender, other = tag + "@example.com", tag + ".other@example.com"
    lo, hi = _t(2001, 3, 1), _t(2001, 3, 2)
    rows = []
    # in the window, created up to 3 days before it; two share created_at (id breaks ties)
    for i in range(14):
        c = lo - datetime.timedelta(days=3) + datetime.timedelta(hours=5 * i, seconds=i)
        rows.append(("%s-in-%02d" % (tag, i), sender if i % 3 else other, c,
                     lo + datetime.timedelta(hours=i % 24, minutes=i)))
    same = _t(2001, 2, 28, 12)
    rows.append(("%s-tie-a" % tag, sender, same, lo + datetime.timedelta(hours=1)))
    rows.append(("%s-tie-b" % tag, sender, same, lo + datetime.timedelta(hours=2)))
    # the ends are in the window, a second either side is not, nor is no event at all
    rows.append(("%s-edge-lo" % tag, sender, lo - datetime.timedelta(hours=1), lo))
    rows.append(("%s-edge-hi" % tag, sender, lo, hi))
    rows.append(("%s-out-before" % tag, sender, lo - datetime.timedelta(days=1),
                 lo - datetime.timedelta(seconds=1)))
    rows.append(("%s-out-after" % tag, sender, lo + datetime.timedelta(hours=3),
                 hi + datetime.timedelta(seconds=1)))
    rows.append(("%s-out-null" % tag, sender, lo + datetime.timedelta(hours=4), None))
    # last event before its creation: created after the window, yet in it; the newest match
    rows.append(("%s-late" % tag, sender, hi + datetime.timedelta(days=3),
                 lo + datetime.timedelta(hours=6)))
    # many newer messages, their events after the window
    for i in range(60):
        c = hi + datetime.timedelta(days=1, hours=7 * i)
        rows.append(("%s-newer-%02d" % (tag, i), sender, c, c + datetime.timedelta(hours=1)))
    _insert(mp, rows)
    yield tag, sender, lo, hi, rows
    mp.query("DELETE FROM messages WHERE starts_with(message_id, %s)", tag + "-")


@pytest.mark.parametrize("limit", [1, 4, 10, 1000])
def test_old_window_exact_order_and_pages(mp, key, old_window, limit):
    tag, _, lo, hi, rows = old_window
    want = _expected(rows, lo, hi)
    assert len(want) == 19 and want[0] == "%s-late" % tag
    assert want.index("%s-tie-b" % tag) + 1 == want.index("%s-tie-a" % tag)
    assert _walk(mp, key, _between(lo, hi), limit) == (want, False)


def test_old_window_with_other_terms(mp, key, old_window):
    tag, sender, lo, hi, rows = old_window
    want = _expected(rows, lo, hi, sender)
    assert 0 < len(want) < len(_expected(rows, lo, hi))
    assert _walk(mp, key, 'from_email="%s" AND %s' % (sender, _between(lo, hi)), 3) == (
        want, False)
    # a window under OR bounds nothing: the plain walk answers, in the same order
    got, more = _walk(mp, key, '(%s) OR msg_id="%s-newer-05"' % (_between(lo, hi), tag), 5)
    hit = set(_expected(rows, lo, hi)) | {"%s-newer-05" % tag}
    assert not more and got == [r[0] for r in sorted(
        (r for r in rows if r[0] in hit), key=lambda r: (r[2], r[0]), reverse=True)]


def test_old_window_message_fields(mp, key, old_window):
    tag, _, lo, hi, _ = old_window
    body = get_ok(mp, "/v3/messages", key, {"query": _between(lo, hi), "limit": "1"})
    m = body["messages"][0]
    assert m["msg_id"] == "%s-late" % tag and "next" in body
    assert m["last_event_time"] == "2001-03-01T06:00:00Z", m
    assert set(m) == FIELDS and m["to_email"] == "window@example.com", m


@pytest.fixture(scope="module")
def wide_window(mp):
    """A week in 2002 holding more than WINDOW_SORT_MAX messages; removed afterwards."""
    tag = "lew%s" % uuid.uuid4().hex[:10]
    sender = tag + "@example.com"
    lo, hi = _t(2002, 1, 1), _t(2002, 1, 8)
    rows = []
    for i in range(2600):  # one every 4 minutes; the last event 0 to 8 hours later
        c = lo - datetime.timedelta(hours=6) + datetime.timedelta(minutes=4 * i)
        rows.append(("%s-%04d" % (tag, i), sender, c,
                     c + datetime.timedelta(hours=i % 9, seconds=i % 60)))
    for i in range(3):  # created after the window, last event in it
        rows.append(("%s-late-%d" % (tag, i), sender, hi + datetime.timedelta(days=2 + i),
                     lo + datetime.timedelta(days=1 + i)))
    for i in range(300):  # newer ones, their events after the window
        c = hi + datetime.timedelta(days=1, minutes=30 * i)
        rows.append(("%s-newer-%03d" % (tag, i), sender, c, c + datetime.timedelta(minutes=5)))
    _insert(mp, rows)
    yield tag, lo, hi, rows
    mp.query("DELETE FROM messages WHERE starts_with(message_id, %s)", tag + "-")


def test_wide_old_window_exact_order_and_pages(mp, key, wide_window):
    tag, lo, hi, rows = wide_window
    want = _expected(rows, lo, hi)
    assert len(want) > WINDOW_SORT_MAX  # the walked plan, not the sorted one
    assert want[:3] == ["%s-late-%d" % (tag, i) for i in (2, 1, 0)]
    assert _walk(mp, key, _between(lo, hi), 1000) == (want, False)
    # small pages: the first 20 of them, by cursor
    assert _walk(mp, key, _between(lo, hi), 7, max_pages=20) == (want[:140], True)
    # a narrower window inside it (the sorted plan), from a page in the middle of the week
    mid_lo, mid_hi = lo + datetime.timedelta(days=3), lo + datetime.timedelta(days=3, hours=2)
    want = _expected(rows, mid_lo, mid_hi)
    assert len(want) > 10 and _walk(mp, key, _between(mid_lo, mid_hi), 10) == (want, False)
