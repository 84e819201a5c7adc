"""The read API's Stats endpoints (build/query behind nginx): GET /v3/stats and
GET /v3/categories/stats in SendGrid's shapes, their validation errors, API key
checks, and /readyz.

Events are posted on a day picked at random in 2001-2019 (unique to the test run),
and the expected counters are computed here from the `events` rows of those days by
the rules of sql/008_stats.sql.
"""

import datetime
import random
import uuid

import pytest

from helpers import mailpipe as mpl

METRICS = ("blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered",
           "invalid_emails", "opens", "processed", "requests", "spam_report_drops",
           "spam_reports", "unique_clicks", "unique_opens", "unsubscribe_drops",
           "unsubscribes")

UTC = datetime.timezone.utc


def zero():
    return {m: 0 for m in METRICS}


def ts_of(day, seconds):
    t = datetime.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(t.timestamp()) + seconds


def counters_from_events(mp, first, last):
    """{(day, category): metrics} computed from the events of [first, last] (UTC days),
    category '' = all mail; only (day, category) pairs that have events appear."""
    rows = mp.query(
        "select (event_time at time zone 'UTC')::date, event, email, category, reason, type"
        " from events where event_time >= %s and event_time < %s"
        " order by event_time, sg_event_id",
        datetime.datetime(first.year, first.month, first.day, tzinfo=UTC),
        datetime.datetime(last.year, last.month, last.day, tzinfo=UTC)
        + datetime.timedelta(days=1))
    out, seen = {}, set()
    for day, event, email, category, reason, etype in rows:
        for cat in [""] + sorted(set(category or [])):
            m = out.setdefault((day, cat), zero())
            if event in ("processed", "dropped"):
                m["requests"] += 1
            if event == "processed":
                m["processed"] += 1
            elif event == "delivered":
                m["delivered"] += 1
            elif event == "deferred":
                m["deferred"] += 1
            elif event == "bounce":
                if etype in (None, "bounce"):
                    m["bounces"] += 1
                elif etype == "blocked":
                    m["blocks"] += 1
            elif event == "dropped":
                r = reason or ""
                if r == "Bounced Address":
                    m["bounce_drops"] += 1
                elif r == "Spam Reporting Address":
                    m["spam_report_drops"] += 1
                elif r == "Unsubscribed Address":
                    m["unsubscribe_drops"] += 1
                elif r.lower().startswith("invalid"):
                    m["invalid_emails"] += 1
            elif event in ("open", "click"):
                m[event + "s"] += 1
                key = (day, event, cat, (email or "").lower())
                if email is not None and key not in seen:
                    seen.add(key)
                    m["unique_" + event + "s"] += 1
            elif event == "spamreport":
                m["spam_reports"] += 1
            elif event in ("unsubscribe", "group_unsubscribe"):
                m["unsubscribes"] += 1
    return out


def days(first, last):
    d = first
    while d <= last:
        yield d
        d += datetime.timedelta(days=1)


def bucket(day, period):
    if period == "week":
        return day - datetime.timedelta(days=day.weekday())  # Monday
    if period == "month":
        return day.replace(day=1)
    return day


def expected(counters, first, last, period="day", categories=None):
    """What the API should answer for [first, last]."""
    out = {}
    for d in days(first, last):
        b = bucket(d, period)
        for cat in categories or [""]:
            m = out.setdefault(b, {}).setdefault(cat, zero())
            for k, v in counters.get((d, cat), {}).items():
                m[k] += v
    result = []
    for b in sorted(out):
        if categories is None:
            stats = [{"metrics": out[b][""]}]
        else:
            stats = [{"type": "category", "name": c, "metrics": out[b][c]}
                     for c in categories]
        result.append({"date": b.isoformat(), "stats": stats})
    return result


@pytest.fixture(scope="module")
def key(mp):
    return mp.api_key


@pytest.fixture(scope="module")
def stats_day(mp):
    """Posts a known mix of events around a random day; returns (day, categories)."""
    rnd = random.Random()
    day = datetime.date(rnd.randint(2001, 2019), rnd.randint(1, 12), rnd.randint(1, 28))
    tag = "stats_%s" % uuid.uuid4().hex[:10]
    cat_a, cat_b = "sa-%s" % tag, "sb %s" % tag
    nxt = day + datetime.timedelta(days=1)
    later = day + datetime.timedelta(days=3)

    def ev(event, when, seconds, category=None, **kw):
        fields = {"event": event, "timestamp": ts_of(when, seconds)}
        fields["category"] = category if category is not None else mpl.DROP
        fields.update(kw)
        return mpl.new_event(tag, **fields)

    batch = [
        ev("processed", day, 5, [cat_a, cat_b]),
        ev("processed", day, 6, cat_a),
        ev("dropped", day, 7, [cat_a], reason="Bounced Address"),
        ev("dropped", day, 8, None, reason="Spam Reporting Address"),
        ev("dropped", day, 9, [cat_b], reason="Unsubscribed Address"),
        ev("dropped", day, 10, [cat_a, cat_a], reason="Invalid SMTPAPI header"),
        ev("delivered", day, 11, [cat_a, cat_b]),
        ev("delivered", day, 12),
        ev("deferred", day, 13, [cat_b], response="400 try again"),
        ev("bounce", day, 14, [cat_a], type="bounce", reason="550 no such user"),
        ev("bounce", day, 15, [cat_a], type="blocked", reason="554 blocked"),
        ev("bounce", day, 16, None, reason="550 gone"),
        ev("open", day, 17, [cat_a], email="Bob@example.com"),
        ev("open", day, 18, [cat_a], email="bob@example.com"),
        ev("open", day, 19, [cat_b], email="BOB@example.com"),
        ev("open", day, 20, [cat_a], email="carol@example.com"),
        ev("click", day, 21, [cat_a, cat_b], email="bob@example.com",
           url="https://example.com/a"),
        ev("click", day, 86399, [cat_a], email="bob@example.com",
           url="https://example.com/b"),
        ev("spamreport", day, 22, [cat_b]),
        ev("unsubscribe", day, 23, [cat_a]),
        ev("group_unsubscribe", day, 24, [cat_b], asm_group_id=1),
        # the next day: bob's open is unique again
        ev("open", nxt, 0, [cat_a], email="bob@example.com"),
        ev("processed", nxt, 100, [cat_b]),
        ev("delivered", later, 3600, [cat_a]),
    ]
    mpl.assert_accepted(mp.post_webhook(batch), len(batch))
    # the same events again: duplicates never count twice
    mp.post_webhook(batch)
    mpl.wait_until(lambda: mp.count_events(tag)[1] == len(batch), timeout=60,
                   desc="the sink to store the stats events")
    mp.wait_sink_idle()
    return day, [cat_a, cat_b]


def get(mp, path, key, params=None):
    headers = {"Authorization": "Bearer " + key} if key is not None else {}
    return mp.request("GET", path, params=params, headers=headers)


def get_ok(mp, path, key, params):
    r = get(mp, path, key, params)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    return r.json()


def test_daily_stats_match_events(mp, key, stats_day):
    day, _ = stats_day
    first, last = day - datetime.timedelta(days=2), day + datetime.timedelta(days=5)
    counters = counters_from_events(mp, first, last)
    # the mix above, under category '' on the day itself
    m = counters[(day, "")]
    assert (m["requests"], m["processed"], m["delivered"], m["deferred"]) == (6, 2, 2, 1)
    assert (m["bounces"], m["blocks"], m["bounce_drops"], m["spam_report_drops"],
            m["unsubscribe_drops"], m["invalid_emails"]) == (2, 1, 1, 1, 1, 1)
    assert (m["opens"], m["unique_opens"], m["clicks"], m["unique_clicks"]) == (4, 2, 2, 1)
    assert (m["spam_reports"], m["unsubscribes"]) == (1, 2)

    body = get_ok(mp, "/v3/stats", key, {"start_date": first.isoformat(),
                                         "end_date": last.isoformat()})
    assert body == expected(counters, first, last)
    assert len(body) == 8
    # days without events are there, all zeros
    assert body[0] == {"date": first.isoformat(), "stats": [{"metrics": zero()}]}
    assert list(body[2]["stats"][0]["metrics"]) == list(METRICS)
    # aggregated_by=day is the default
    again = get_ok(mp, "/v3/stats", key, {"start_date": first.isoformat(),
                                          "end_date": last.isoformat(),
                                          "aggregated_by": "day"})
    assert again == body


@pytest.mark.parametrize("period", ["week", "month"])
def test_aggregated_stats(mp, key, stats_day, period):
    day, _ = stats_day
    first, last = day - datetime.timedelta(days=9), day + datetime.timedelta(days=40)
    counters = counters_from_events(mp, first, last)
    body = get_ok(mp, "/v3/stats", key, {"start_date": first.isoformat(),
                                         "end_date": last.isoformat(),
                                         "aggregated_by": period})
    want = expected(counters, first, last, period)
    assert body == want
    total = zero()
    for elem in body:
        for k, v in elem["stats"][0]["metrics"].items():
            total[k] += v
    assert total["requests"] == 6 + 1 and total["delivered"] == 2 + 1
    assert total["unique_opens"] == 2 + 1


def test_category_stats(mp, key, stats_day):
    day, cats = stats_day
    first, last = day - datetime.timedelta(days=1), day + datetime.timedelta(days=4)
    counters = counters_from_events(mp, first, last)
    params = [("categories", cats[0]), ("categories", cats[1]), ("categories", "nothing-here"),
              ("start_date", first.isoformat()), ("end_date", last.isoformat())]
    body = get_ok(mp, "/v3/categories/stats", key, params)
    assert body == expected(counters, first, last, categories=cats + ["nothing-here"])
    a = body[1]["stats"][0]
    assert a["type"] == "category" and a["name"] == cats[0]
    assert a["metrics"]["requests"] == 4 and a["metrics"]["opens"] == 3
    assert a["metrics"]["unique_opens"] == 2 and a["metrics"]["invalid_emails"] == 1
    b = body[1]["stats"][1]["metrics"]
    assert b["unique_opens"] == 1 and b["unsubscribes"] == 1 and b["deferred"] == 1
    assert body[1]["stats"][2]["metrics"] == zero()

    monthly = get_ok(mp, "/v3/categories/stats", key,
                     [("categories", cats[1]), ("start_date", first.isoformat()),
                      ("end_date", last.isoformat()), ("aggregated_by", "month")])
    assert monthly == expected(counters, first, last, "month", [cats[1]])


def error_fields(resp):
    body = mpl.assert_json_error(resp, 400)
    return [e["field"] for e in body["errors"]]


@pytest.mark.parametrize("params,fields", [
    ({}, ["start_date"]),
    ({"start_date": ""}, ["start_date"]),
    ({"start_date": "2015-1-03"}, ["start_date"]),
    ({"start_date": "2015-02-29"}, ["start_date"]),
    ({"start_date": "03/11/2015"}, ["start_date"]),
    ({"start_date": "2015-11-03", "end_date": "2015-11-31"}, ["end_date"]),
    ({"start_date": "2015-11-03", "end_date": "2015-11-02"}, ["end_date"]),
    ({"start_date": "2001-01-01", "end_date": "2019-01-01"}, ["end_date"]),
    ({"start_date": "2015-11-03", "end_date": "2015-11-04", "aggregated_by": "year"},
     ["aggregated_by"]),
    # end_date defaults to today
    ({"start_date": "2001-01-01"}, ["end_date"]),
    ({"end_date": "x", "aggregated_by": "Day"}, ["start_date", "end_date", "aggregated_by"]),
])
def test_stats_validation(mp, key, params, fields):
    assert error_fields(get(mp, "/v3/stats", key, params)) == fields


@pytest.mark.parametrize("params,fields", [
    ([("start_date", "2015-11-03"), ("end_date", "2015-11-03")], ["categories"]),
    ([("categories", ""), ("start_date", "2015-11-03"), ("end_date", "2015-11-03")],
     ["categories"]),
    ([("categories", "x" * 256), ("start_date", "2015-11-03"), ("end_date", "2015-11-03")],
     ["categories"]),
    ([("categories", "c%d" % i) for i in range(11)]
     + [("start_date", "2015-11-03"), ("end_date", "2015-11-03")], ["categories"]),
    ([("categories", "a")], ["start_date"]),
    ([("categories", "a"), ("start_date", "2015-11-03"), ("end_date", "2015-11-03"),
      ("aggregated_by", "hour")], ["aggregated_by"]),
])
def test_category_stats_validation(mp, key, params, fields):
    assert error_fields(get(mp, "/v3/categories/stats", key, params)) == fields


def test_ten_categories_and_repeats_are_fine(mp, key):
    params = [("categories", "c%d" % (i % 10)) for i in range(12)]
    body = get_ok(mp, "/v3/categories/stats", key,
                  params + [("start_date", "2002-02-02"), ("end_date", "2002-02-02")])
    assert [s["name"] for s in body[0]["stats"]] == ["c%d" % i for i in range(10)]


@pytest.mark.parametrize("path", ["/v3/stats", "/v3/categories/stats"])
def test_stats_auth(mp, path):
    params = [("categories", "a"), ("start_date", "2015-11-03"), ("end_date", "2015-11-03")]
    mpl.assert_json_error(get(mp, path, None, params), 401)
    bogus = "mp_zzzzzzzz_" + "A" * 43
    mpl.assert_json_error(get(mp, path, bogus, params), 401)
    r = mp.request("GET", path, params=params, headers={"Authorization": "Basic x"})
    mpl.assert_json_error(r, 401)


def test_stats_needs_scope(mp):
    other, _ = mp.create_api_key("stats-no-scope", "mail.send")
    params = {"start_date": "2015-11-03", "end_date": "2015-11-03"}

    def loaded():
        r = get(mp, "/v3/stats", other, params)
        return [r] if r.status_code != 401 else None
    r = mpl.wait_until(loaded, timeout=20, desc="query to load a new API key")[0]
    body = mpl.assert_json_error(r, 403)
    assert "stats.read" in body["errors"][0]["message"]
    reader, _ = mp.create_api_key("stats-reader", "stats.read")
    ok = mpl.wait_until(lambda: get(mp, "/v3/stats", reader, params).status_code == 200,
                        timeout=20, desc="a stats.read key to be accepted")
    assert ok


def wait_ready(mp, timeout=60):
    """/readyz answers 200 (earlier tests stop Redis and PostgreSQL: query reconnects
    to Redis at most every 2 s)."""
    def ready():
        x = mp.request("GET", "/readyz", timeout=15)
        return [x] if x.status_code == 200 else None
    return mpl.wait_until(ready, timeout=timeout, desc="/readyz to answer 200")[0]


def test_health(mp):
    r = mp.request("GET", "/healthz")
    assert r.status_code == 200
    r = wait_ready(mp)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.json() == {"postgres": "ok", "redis": "ok", "kafka": "ok"}


def test_readyz_without_postgres(mp, key, make_event, tag):
    wait_ready(mp)
    try:
        mp.stack("stop", "postgres", timeout=60)
        def down():
            x = mp.request("GET", "/readyz", timeout=15)
            return [x] if x.status_code == 503 else None   # a 5xx Response is falsy
        r = mpl.wait_until(down, timeout=30, desc="/readyz to answer 503 without postgres")[0]
        assert r.json() == {"postgres": "unavailable", "redis": "ok", "kafka": "ok"}
        r = get(mp, "/v3/stats", key, {"start_date": "2015-11-03", "end_date": "2015-11-03"})
        mpl.assert_json_error(r, 503)
    finally:
        mp.stack("start", "postgres", timeout=120)
    wait_ready(mp)
    r = get(mp, "/v3/stats", key, {"start_date": "2015-11-03", "end_date": "2015-11-03"})
    assert r.status_code == 200, r.text
    # leave the stack as found: the sink writes again before the next test runs
    mpl.assert_accepted(mp.post_webhook([make_event()]), 1)
    mpl.wait_until(lambda: mp.count_events(tag)[0] == 1, timeout=60,
                   desc="the sink to write again after postgres came back")
    mp.wait_sink_idle()


def test_readyz_without_kafka(mp):
    """All brokers down: /readyz says which dependency is missing, and recovers."""
    wait_ready(mp)
    try:
        mp.kafka_ctl("down")
        def down():
            x = mp.request("GET", "/readyz", timeout=15)
            return [x] if x.status_code == 503 else None
        r = mpl.wait_until(down, timeout=30, desc="/readyz to answer 503 without kafka")[0]
        assert r.json() == {"postgres": "ok", "redis": "ok", "kafka": "unavailable"}
        assert mp.logs_containing("readyz: kafka:"), "the cause is logged"
    finally:
        mp.kafka_ctl("up")
    wait_ready(mp)


def test_bad_query_string(mp, key):
    # a decoded NUL is refused (requests re-quotes a bad escape such as %zz itself)
    r = mp.request("GET", "/v3/stats?start_date=2015-11-03&end_date=2015-11-03%00",
                   headers={"Authorization": "Bearer " + key})
    body = mpl.assert_json_error(r, 400)
    assert "percent-encoding" in body["errors"][0]["message"]
    # "+" and %XX decode: "2015-11-03" spelled with an escape is fine
    r = mp.request("GET", "/v3/stats?start_date=2015%2D11-03&end_date=2015-11-03&x=a+b",
                   headers={"Authorization": "Bearer " + key})
    assert r.status_code == 200, r.text
    assert [e["date"] for e in r.json()] == ["2015-11-03"]
