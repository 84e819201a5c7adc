"""The read API's suppression lists (build/query behind nginx), in SendGrid's shapes:
GET /v3/suppression/{bounces,blocks,spam_reports,unsubscribes}[/{email}] and
DELETE /v3/suppression/<list>/{email}, their filters, validation errors and API key
scopes, and the end-to-end effect of a DELETE: mail to the address is sent again.

Entries are made by signed webhook batches the sink stores.  Suppressions are created
at the time the sink stores them; to test the time filters without depending on the
clock, the fixture then moves this test's rows to fixed times in a year picked at random
(2001-2019), and every list query is bounded to that year.  Blocks are created at their
event's time, which the events carry.
"""

import datetime
import random
import time
import urllib.parse
import uuid

import pytest

from helpers import mailpipe as mpl

UTC = datetime.timezone.utc
SET = mpl.REDIS_PREFIX + "suppressed"
LISTS = ("bounces", "blocks", "spam_reports", "unsubscribes")


def addr(kind, tag):
    return "%s-%s@example.com" % (kind, tag)


def get(mp, path, key, params=None):
    headers = {"Authorization": "Bearer " + key} if key is not None else {}
    return mp.request("GET", path, params=params, headers=headers)


def delete(mp, path, key):
    headers = {"Authorization": "Bearer " + key} if key is not None else {}
    return mp.request("DELETE", path, headers=headers)


def get_ok(mp, path, key, params=None):
    r = get(mp, path, key, params)
    assert r.status_code == 200, (path, params, r.status_code, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    body = r.json()
    assert isinstance(body, list), body
    return body


def quoted(email):
    return urllib.parse.quote(email, safe="")


def suppression_row(mp, email):
    rows = mp.query("select email, reason, source_event from suppressions where email = %s",
                    email)
    return rows[0] if rows else None


def block_row(mp, email):
    rows = mp.query("select email, reason, status, source_event, created_at from blocks"
                    " where email = %s", email)
    return rows[0] if rows else None


@pytest.fixture(scope="module")
def key(mp):
    return mp.api_key


@pytest.fixture(scope="module")
def data(mp):
    """Posts hard bounces, blocks, spam reports, unsubscribes, a group unsubscribe and
    soft bounces for addresses unique to this run; moves the suppressions to fixed times
    in a random year.  Returns a dict of what the lists must answer."""
    tag = "supp%s" % uuid.uuid4().hex[:10]
    rnd = random.Random()
    year = rnd.randint(1981, 1999)  # test_stats_api posts blocks in 2001-2019
    base = int(datetime.datetime(year, 3, 1, tzinfo=UTC).timestamp())
    d = {"tag": tag, "window": {"start_time": base, "end_time": base + 86400 * 300}}
    b1, b2, b3 = addr("b1", tag), addr("b2", tag), addr("b3", tag)
    mixed = "Mixed-%s@Example.COM" % tag
    k1, k2 = addr("k1", tag), addr("k2", tag)
    s1, u1, g1 = addr("s1", tag), addr("u1", tag), addr("g1", tag)
    soft, deferred = addr("soft", tag), addr("deferred", tag)
    now = int(time.time())

    def ev(event, email, ts=None, **kw):
        return mpl.new_event(tag, event=event, email=email,
                             timestamp=ts if ts is not None else now, **kw)

    batch = [
        ev("bounce", b1, type="bounce", reason="550 5.1.1 no such user", status="5.1.1"),
        ev("bounce", b2, type="bounce", reason="552 mailbox full", status="5.2.2"),
        # no type: a bounce too
        ev("bounce", b3, type=mpl.DROP, reason="550 gone", status="5.0.0"),
        ev("bounce", mixed, type="bounce", reason="550 unknown", status="5.1.1"),
        # blocks: k1 twice (the later one wins), k2 once
        ev("bounce", k1, ts=base + 1000, type="blocked", reason="554 old block",
           status="5.7.1"),
        ev("bounce", k1, ts=base + 2000, type="blocked", reason="421 new block",
           status="4.7.0"),
        ev("bounce", k2, ts=base + 1500, type="blocked", reason="554 listed",
           status="5.7.1"),
        ev("spamreport", s1, ip="10.1.2.3"),
        ev("unsubscribe", u1),
        ev("group_unsubscribe", g1, asm_group_id=7),
        # soft bounces: suppress nothing, listed nowhere
        ev("deferred", deferred, response="451 try later", attempt="1"),
        ev("bounce", soft, type="blocked", ts=base - 86400 * 400, reason="421 slow down",
           status="4.2.1"),
    ]
    t0 = time.time()
    mpl.assert_accepted(mp.post_webhook(batch), len(batch))
    # an older block of k1 arriving late does not replace the newer one
    late = [ev("bounce", k1, ts=base + 10, type="blocked", reason="554 oldest",
               status="5.7.1")]
    mpl.assert_accepted(mp.post_webhook(late), 1)
    mpl.wait_until(lambda: mp.count_events(tag)[1] == len(batch) + 1, timeout=60,
                   desc="the sink to store the suppression events")
    mp.wait_sink_idle()
    t1 = time.time()

    rows = mp.query("select email, reason, floor(extract(epoch from created_at))::bigint"
                    " from suppressions where email like %s", "%-" + tag + "@example.com")
    got = {r[0]: r[1] for r in rows}
    assert got == {b1: "bounce", b2: "bounce", b3: "bounce", mixed.lower(): "bounce",
                   s1: "spamreport", u1: "unsubscribe", g1: "group_unsubscribe"}, got
    # created is when the sink stored them
    for r in rows:
        assert int(t0) - 1 <= r[2] <= int(t1) + 1, r
    d["stored_at"] = {r[0]: r[2] for r in rows}
    r = mp.redis()
    for a in (b1, b2, b3, mixed.lower(), s1, u1, g1):
        mpl.wait_until(lambda a=a: r.sismember(SET, a), 10, desc="%s in the redis set" % a)

    # fixed times: b1 and b2 share a second (email breaks the tie)
    times = {b1: base + 500, b2: base + 500, b3: base + 100, mixed.lower(): base + 900,
             s1: base + 300, u1: base + 400, g1: base + 400}
    conn = mp.db()
    try:
        with conn.cursor() as cur:
            for email, t in times.items():
                cur.execute("update suppressions set created_at = to_timestamp(%s)"
                            " where email = %s", (t, email))
    finally:
        conn.close()
    d.update(base=base, year=year, times=times, b1=b1, b2=b2, b3=b3, mixed=mixed, k1=k1,
             k2=k2, s1=s1, u1=u1, g1=g1, soft=soft, deferred=deferred)
    return d


def window(d, **extra):
    p = dict(d["window"])
    p.update(extra)
    return p


def test_bounces_list(mp, key, data):
    d, t = data, data["times"]
    body = get_ok(mp, "/v3/suppression/bounces", key, window(d))
    assert body == [
        {"created": t[d["mixed"].lower()], "email": d["mixed"].lower(),
         "reason": "550 unknown", "status": "5.1.1"},
        {"created": t[d["b1"]], "email": d["b1"], "reason": "550 5.1.1 no such user",
         "status": "5.1.1"},
        {"created": t[d["b2"]], "email": d["b2"], "reason": "552 mailbox full",
         "status": "5.2.2"},
        {"created": t[d["b3"]], "email": d["b3"], "reason": "550 gone", "status": "5.0.0"},
    ]


def test_blocks_list(mp, key, data):
    d = data
    body = get_ok(mp, "/v3/suppression/blocks", key, window(d))
    # created is the event's time; k1's latest block wins over the one posted after it
    assert body == [
        {"created": d["base"] + 2000, "email": d["k1"], "reason": "421 new block",
         "status": "4.7.0"},
        {"created": d["base"] + 1500, "email": d["k2"], "reason": "554 listed",
         "status": "5.7.1"},
    ]
    # a block does not suppress
    assert suppression_row(mp, d["k1"]) is None
    assert not mp.redis().sismember(SET, d["k1"])
    # the block of the soft address is older than the window, but listed without one
    soft = get_ok(mp, "/v3/suppression/blocks", key, {"email": d["soft"]})
    assert soft == [{"created": d["base"] - 86400 * 400, "email": d["soft"],
                     "reason": "421 slow down", "status": "4.2.1"}]


def test_spam_reports_and_unsubscribes_lists(mp, key, data):
    d, t = data, data["times"]
    assert get_ok(mp, "/v3/suppression/spam_reports", key, window(d)) == [
        {"created": t[d["s1"]], "email": d["s1"], "ip": "10.1.2.3"}]
    # group unsubscribes are another API: not in the global unsubscribes
    assert get_ok(mp, "/v3/suppression/unsubscribes", key, window(d)) == [
        {"created": t[d["u1"]], "email": d["u1"]}]


def test_soft_bounces_and_group_unsubscribes_are_listed_nowhere(mp, key, data):
    d = data
    for lst in LISTS:
        for a in (d["deferred"], d["g1"]):
            assert get_ok(mp, "/v3/suppression/%s/%s" % (lst, quoted(a)), key) == [], (lst, a)
    assert get_ok(mp, "/v3/suppression/bounces/%s" % quoted(d["soft"]), key) == []
    assert suppression_row(mp, d["soft"]) is None
    assert suppression_row(mp, d["deferred"]) is None


def test_time_filters_are_inclusive(mp, key, data):
    d, t = data, data["times"]
    b1t = t[d["b1"]]
    emails = lambda body: [e["email"] for e in body]
    exact = get_ok(mp, "/v3/suppression/bounces", key,
                   {"start_time": b1t, "end_time": b1t})
    assert emails(exact) == [d["b1"], d["b2"]]
    assert emails(get_ok(mp, "/v3/suppression/bounces", key,
                         {"start_time": b1t + 1, "end_time": d["window"]["end_time"]})) == [
        d["mixed"].lower()]
    assert emails(get_ok(mp, "/v3/suppression/bounces", key,
                         {"start_time": d["base"], "end_time": b1t - 1})) == [d["b3"]]
    # end_time alone
    older = get_ok(mp, "/v3/suppression/bounces", key, {"end_time": b1t - 1})
    assert d["b3"] in emails(older) and d["b1"] not in emails(older)
    # start_time alone: this test's rows are in a past year, newer rows come first
    newer = get_ok(mp, "/v3/suppression/bounces", key, {"start_time": b1t})
    assert d["b3"] not in emails(newer) and d["b1"] in emails(newer)
    # blocks by event time
    assert emails(get_ok(mp, "/v3/suppression/blocks", key,
                         {"start_time": d["base"] + 1500,
                          "end_time": d["base"] + 1999})) == [d["k2"]]


def test_limit_offset_and_email(mp, key, data):
    d = data
    everything = get_ok(mp, "/v3/suppression/bounces", key, window(d))
    assert len(everything) == 4
    pages = [get_ok(mp, "/v3/suppression/bounces", key, window(d, limit=2, offset=o))
             for o in (0, 2, 4)]
    assert pages[0] + pages[1] == everything and pages[2] == []
    assert get_ok(mp, "/v3/suppression/bounces", key,
                  window(d, limit=1, offset=1)) == everything[1:2]
    assert len(get_ok(mp, "/v3/suppression/bounces", key, window(d, limit=500))) == 4
    # email: exact, any letter case
    one = get_ok(mp, "/v3/suppression/bounces", key, {"email": d["mixed"]})
    assert [e["email"] for e in one] == [d["mixed"].lower()]
    assert get_ok(mp, "/v3/suppression/bounces", key, {"email": d["s1"]}) == []
    assert get_ok(mp, "/v3/suppression/spam_reports", key,
                  {"email": d["s1"].upper()})[0]["ip"] == "10.1.2.3"
    # the default limit (500) answers at most 500
    assert len(get_ok(mp, "/v3/suppression/bounces", key)) <= 500


@pytest.mark.parametrize("params,field", [
    ({"start_time": "abc"}, "start_time"),
    ({"start_time": "-1"}, "start_time"),
    ({"start_time": "1.5"}, "start_time"),
    ({"start_time": ""}, "start_time"),
    ({"start_time": " 1"}, "start_time"),
    ({"end_time": "99999999999999999999"}, "end_time"),
    ({"start_time": "200", "end_time": "100"}, "end_time"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "1e3"}, "offset"),
    ({"email": "not-an-address"}, "email"),
    ({"email": ""}, "email"),
    ({"email": "x' OR '1'='1"}, "email"),
    ({"limit": "1; DROP TABLE suppressions"}, "limit"),
    ({"start_time": "0 OR 1=1"}, "start_time"),
])
def test_bad_params_are_400_naming_the_field(mp, key, params, field):
    for lst in LISTS:
        r = get(mp, "/v3/suppression/" + lst, key, params)
        body = mpl.assert_json_error(r, 400)
        assert [e["field"] for e in body["errors"]] == [field], body


def test_every_bad_param_is_listed(mp, key):
    r = get(mp, "/v3/suppression/bounces", key,
            {"start_time": "x", "limit": "9999", "offset": "y", "email": "z"})
    body = mpl.assert_json_error(r, 400)
    assert sorted(e["field"] for e in body["errors"]) == [
        "email", "limit", "offset", "start_time"]
    r = mp.request("GET", "/v3/suppression/bounces?limit=%zz",
                   headers={"Authorization": "Bearer " + key})
    mpl.assert_json_error(r, 400)


def test_injection_in_the_email_is_a_no_op(mp, key, data):
    # with white space: not an address, 400
    r = get(mp, "/v3/suppression/bounces", key,
            {"email": "a'; DELETE FROM suppressions; --@example.com"})
    assert mpl.assert_json_error(r, 400)["errors"][0]["field"] == "email"
    # without: a well-formed address that is on no list
    evil = "a';DELETE/**/FROM/**/suppressions;--@example.com"
    assert get_ok(mp, "/v3/suppression/bounces", key, {"email": evil}) == []
    assert get_ok(mp, "/v3/suppression/bounces/" + quoted(evil), key) == []
    r = delete(mp, "/v3/suppression/bounces/" + quoted(evil), key)
    mpl.assert_json_error(r, 404)
    r = delete(mp, "/v3/suppression/bounces/" + quoted("' OR ''='"), key)
    body = mpl.assert_json_error(r, 400)
    assert body["errors"][0]["field"] == "email"
    # nothing else went
    assert suppression_row(mp, data["b1"]) is not None
    assert len(get_ok(mp, "/v3/suppression/bounces", key, window(data))) >= 3


def test_single_entry(mp, key, data):
    d, t = data, data["times"]
    # the address URL-encoded, in another letter case
    path = "/v3/suppression/bounces/" + quoted(d["mixed"].upper())
    assert get_ok(mp, path, key) == [
        {"created": t[d["mixed"].lower()], "email": d["mixed"].lower(),
         "reason": "550 unknown", "status": "5.1.1"}]
    # '@' as is works too
    assert len(get_ok(mp, "/v3/suppression/spam_reports/" + d["s1"], key)) == 1
    assert get_ok(mp, "/v3/suppression/unsubscribes/" + quoted(d["u1"]), key) == [
        {"created": t[d["u1"]], "email": d["u1"]}]
    assert get_ok(mp, "/v3/suppression/blocks/" + quoted(d["k1"]), key)[0]["reason"] == \
        "421 new block"
    # on another list: []
    assert get_ok(mp, "/v3/suppression/spam_reports/" + quoted(d["b1"]), key) == []
    assert get_ok(mp, "/v3/suppression/bounces/" + quoted(addr("nobody", d["tag"])),
                  key) == []
    # the query string does not narrow a single entry
    assert len(get_ok(mp, "/v3/suppression/bounces/" + quoted(d["b1"]), key,
                      {"start_time": "1", "end_time": "2"})) == 1


@pytest.mark.parametrize("segment", ["no-at-sign", "a%20b@example.com",
                                     "x" * 320 + "@example.com", "a%09b@example.com"])
def test_bad_email_in_path_is_400(mp, key, segment):
    for method in ("GET", "DELETE"):
        r = mp.request(method, "/v3/suppression/bounces/" + segment,
                       headers={"Authorization": "Bearer " + key})
        body = mpl.assert_json_error(r, 400)
        assert body["errors"][0]["field"] == "email", body


def test_empty_email_in_path(mp, key):
    r = get(mp, "/v3/suppression/bounces/", key)
    assert r.status_code in (400, 404), r.text
    mpl.assert_json_error(r, r.status_code)


@pytest.mark.parametrize("name", ["group_unsubscribes", "invalid_emails", "bounce",
                                  "BOUNCES", "x"])
def test_unknown_list_is_404(mp, key, name):
    for method, path in (("GET", "/v3/suppression/" + name),
                         ("GET", "/v3/suppression/%s/a@example.com" % name),
                         ("DELETE", "/v3/suppression/%s/a@example.com" % name)):
        r = mp.request(method, path, headers={"Authorization": "Bearer " + key})
        mpl.assert_json_error(r, 404)


def test_delete_whole_list_is_refused(mp, key, data):
    r = delete(mp, "/v3/suppression/bounces", key)
    mpl.assert_json_error(r, 405)
    assert "GET" in r.headers.get("Allow", "")
    assert suppression_row(mp, data["b2"]) is not None


def test_auth(mp, key, data):
    path = "/v3/suppression/bounces"
    mpl.assert_json_error(get(mp, path, None), 401)
    mpl.assert_json_error(delete(mp, path + "/" + data["b2"], None), 401)
    mpl.assert_json_error(get(mp, path, "mp_zzzzzzzz_" + "A" * 43), 401)

    other, _ = mp.create_api_key("supp-no-scope", "stats.read,mail.send")
    reader, _ = mp.create_api_key("supp-reader", "suppressions.read")
    writer, _ = mp.create_api_key("supp-writer", "suppressions.write")

    def loaded(k):
        def ok():
            r = get(mp, path, k, {"limit": "1"})
            return [r] if r.status_code != 401 else None
        return mpl.wait_until(ok, timeout=20, desc="query to load a new API key")[0]

    body = mpl.assert_json_error(loaded(other), 403)
    assert "suppressions.read" in body["errors"][0]["message"]
    assert loaded(reader).status_code == 200
    body = mpl.assert_json_error(delete(mp, path + "/" + data["b2"], reader), 403)
    assert "suppressions.write" in body["errors"][0]["message"]
    mpl.assert_json_error(delete(mp, path + "/" + data["b2"], other), 403)
    assert suppression_row(mp, data["b2"]) is not None
    # write without read: may delete, may not list
    mpl.assert_json_error(loaded(writer), 403)
    r = delete(mp, path + "/" + quoted(data["b2"]), writer)
    assert r.status_code == 204, r.text
    assert suppression_row(mp, data["b2"]) is None


def test_delete_each_list(mp, key, data):
    d = data
    r = mp.redis()
    for lst, email in (("spam_reports", d["s1"]), ("unsubscribes", d["u1"])):
        # on another list: 404, and it stays
        mpl.assert_json_error(delete(mp, "/v3/suppression/bounces/" + quoted(email), key),
                              404)
        assert suppression_row(mp, email) is not None
        resp = delete(mp, "/v3/suppression/%s/%s" % (lst, quoted(email.upper())), key)
        assert resp.status_code == 204, resp.text
        assert resp.content == b""
        assert suppression_row(mp, email) is None
        assert not r.sismember(SET, email)
        assert get_ok(mp, "/v3/suppression/%s/%s" % (lst, quoted(email)), key) == []
        mpl.assert_json_error(delete(mp, "/v3/suppression/%s/%s" % (lst, quoted(email)), key),
                              404)
    # group unsubscribes are not in unsubscribes: not deleted from there
    mpl.assert_json_error(delete(mp, "/v3/suppression/unsubscribes/" + quoted(d["g1"]), key),
                          404)
    assert suppression_row(mp, d["g1"]) is not None

    # blocks: the row goes; nothing else changes
    resp = delete(mp, "/v3/suppression/blocks/" + quoted(d["k2"]), key)
    assert resp.status_code == 204, resp.text
    assert block_row(mp, d["k2"]) is None
    mpl.assert_json_error(delete(mp, "/v3/suppression/blocks/" + quoted(d["k2"]), key), 404)
    assert [e["email"] for e in get_ok(mp, "/v3/suppression/blocks", key, window(d))] == [
        d["k1"]]


def test_delete_lets_mail_through_again(mp, key):
    """A hard bounce from the simulator suppresses the address; DELETE through the API
    removes it from PostgreSQL and Redis, and the next mail is sent."""
    a = mpl.unique_address("bounce+")
    first = mp.send_ok(mpl.mail_body(to=a))
    mp.wait_status(first, "bounce", timeout=20)
    row = mpl.wait_until(lambda: suppression_row(mp, a.lower()), 20,
                         desc="a suppressions row for %s" % a)
    assert row[1] == "bounce"
    r = mp.redis()
    mpl.wait_until(lambda: r.sismember(SET, a.lower()), 10, desc="%s in the redis set" % a)
    entry = get_ok(mp, "/v3/suppression/bounces/" + quoted(a), key)
    assert len(entry) == 1 and entry[0]["email"] == a.lower(), entry
    # the bounce's own reason and status, from its event
    ev = mp.query("select reason, status from events where sg_event_id = %s", row[2])[0]
    assert (entry[0]["reason"], entry[0]["status"]) == (ev[0] or "", ev[1] or "")

    second = mp.send_ok(mpl.mail_body(to=a))
    mp.wait_status(second, "suppressed", timeout=20)
    assert mp.sim_count(second) == 0

    resp = delete(mp, "/v3/suppression/bounces/" + quoted(a), key)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert suppression_row(mp, a.lower()) is None
    assert not r.sismember(SET, a.lower())
    mpl.assert_json_error(delete(mp, "/v3/suppression/bounces/" + quoted(a), key), 404)

    third = mp.send_ok(mpl.mail_body(to=a))
    mp.wait_status(third, "bounce", timeout=20)
    assert mp.sim_count(third) == 1
    # and that bounce suppresses it again
    mpl.wait_until(lambda: suppression_row(mp, a.lower()), 20, desc="suppressed again")


def test_mailpipectl_remove_uses_the_shared_module(mp, tag):
    """`mailpipectl suppression remove` (refactored onto lib/suppress.c): any reason,
    any letter case, PostgreSQL and Redis; blocks are not suppressions."""
    t = uuid.uuid4().hex[:10]
    g, k = addr("g", t), addr("k", t)
    evs = [mpl.new_event(tag, event="group_unsubscribe", email=g.upper(), asm_group_id=3),
           mpl.new_event(tag, event="bounce", type="blocked", email=k, reason="554 x",
                         status="5.7.1")]
    mpl.assert_accepted(mp.post_webhook(evs), 2)
    mpl.wait_until(lambda: suppression_row(mp, g) and block_row(mp, k), 30,
                   desc="the rows")
    r = mp.redis()
    # the sink's mirror is best effort (a Redis restart by another test loses it): make
    # sure the member is there, this test is about removing it
    r.sadd(SET, g)
    out = mp.mailpipectl("suppression", "remove", g.upper())
    assert "removed %s (reason group_unsubscribe)" % g in out.stdout, out.stdout
    assert suppression_row(mp, g) is None and not r.sismember(SET, g)
    bad = mp.mailpipectl("suppression", "remove", k, check=False)
    assert bad.returncode != 0 and "not suppressed" in bad.stderr, bad
    assert block_row(mp, k) is not None
    bad = mp.mailpipectl("suppression", "remove", "no-at-sign", check=False)
    assert bad.returncode != 0 and "invalid email" in bad.stderr, bad


def test_delete_with_redis_down_still_removes(mp, key, tag):
    a = addr("rd", uuid.uuid4().hex[:12])
    ev = mpl.new_event(tag, event="unsubscribe", email=a)
    mpl.assert_accepted(mp.post_webhook([ev]), 1)
    mpl.wait_until(lambda: suppression_row(mp, a), 30, desc="a suppressions row")
    r = mp.redis()
    mpl.wait_until(lambda: r.sismember(SET, a), 10, desc="%s in the redis set" % a)
    stopped = False
    try:
        mp.stack("stop", "redis", timeout=60)
        stopped = True
        resp = delete(mp, "/v3/suppression/unsubscribes/" + quoted(a), key)
        assert resp.status_code == 204, resp.text
        assert suppression_row(mp, a) is None
        mp.stack("start", "redis", timeout=60)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "redis", timeout=60, check=False)
    mpl.wait_until(lambda: mp.logs_containing("'%s' removed from suppressions but not" % a),
                   10, desc="the warning in query's log")
    # the set is out of step until mailpipectl clears it
    r = mp.redis()
    assert mpl.wait_until(lambda: r.ping(), 30, desc="redis back")
    assert r.sismember(SET, a)
    out = mp.mailpipectl("suppression", "remove", a)
    assert "removed it from the redis set" in out.stdout, out.stdout
    assert not r.sismember(SET, a)
