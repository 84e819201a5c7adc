"""The daily rollups (sql/008_stats.sql, kept by the sink) and the analysts' queries.

The rollups must equal counts computed directly from `events` with the spec's mapping,
after a known mix posted with duplicates and out of order; and every sql/queries/*.sql
must run, as the admin and as the read-only role.
"""

import datetime
import glob
import os
import random
import urllib.parse
import uuid

import psycopg2

from helpers.mailpipe import DROP, assert_accepted, encode

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

COUNTERS = ("requests", "processed", "delivered", "deferred", "bounces", "blocks",
            "bounce_drops", "spam_report_drops", "unsubscribe_drops", "invalid_emails",
            "opens", "unique_opens", "clicks", "unique_clicks", "spam_reports",
            "unsubscribes")

# The spec's mapping, computed from events themselves: every event once under '' and
# once per distinct category; unique opens/clicks = distinct lower(email) per day and
# category.  Deliberately not shared with the sink's statement.
FROM_EVENTS_SQL = """
WITH ev AS (
    SELECT (e.event_time AT TIME ZONE 'UTC')::date AS day, c.category, e.event, e.type,
           e.reason, lower(e.email) AS email
    FROM events e
    CROSS JOIN LATERAL (
        SELECT DISTINCT cat FROM (
            SELECT ''::text AS cat
            UNION ALL
            SELECT x FROM unnest(e.category) AS x WHERE x IS NOT NULL AND x <> ''
        ) cats
    ) c (category)
    WHERE e.event_time >= %s::date::timestamp AT TIME ZONE 'UTC'
      AND e.event_time < %s::date::timestamp AT TIME ZONE 'UTC'
)
SELECT day, category,
       count(*) FILTER (WHERE event = 'processed' OR event = 'dropped'),
       count(*) FILTER (WHERE event = 'processed'),
       count(*) FILTER (WHERE event = 'delivered'),
       count(*) FILTER (WHERE event = 'deferred'),
       count(*) FILTER (WHERE event = 'bounce' AND (type IS NULL OR type = 'bounce')),
       count(*) FILTER (WHERE event = 'bounce' AND type = 'blocked'),
       count(*) FILTER (WHERE event = 'dropped' AND reason = 'Bounced Address'),
       count(*) FILTER (WHERE event = 'dropped' AND reason = 'Spam Reporting Address'),
       count(*) FILTER (WHERE event = 'dropped' AND reason = 'Unsubscribed Address'),
       count(*) FILTER (WHERE event = 'dropped' AND reason ILIKE 'invalid%%'),
       count(*) FILTER (WHERE event = 'open'),
       count(DISTINCT email) FILTER (WHERE event = 'open' AND email <> ''),
       count(*) FILTER (WHERE event = 'click'),
       count(DISTINCT email) FILTER (WHERE event = 'click' AND email <> ''),
       count(*) FILTER (WHERE event = 'spamreport'),
       count(*) FILTER (WHERE event IN ('unsubscribe', 'group_unsubscribe'))
FROM ev
GROUP BY day, category
"""

FROM_ROLLUP_SQL = ("SELECT day, category, " + ", ".join(COUNTERS)
                   + " FROM stats_daily WHERE day >= %s::date AND day < %s::date")


def _nonzero(rows):
    return {(r[0], r[1]): tuple(r[2:]) for r in rows if any(r[2:])}


def _run_day():
    """A random UTC day in 2001-2019: far from the other tests' (current) days and
    different on each run, so reruns against a kept stack do not add up."""
    start = datetime.date(2001, 1, 1)
    return start + datetime.timedelta(days=random.SystemRandom().randrange(
        (datetime.date(2019, 12, 30) - start).days))


def test_rollups_equal_counts_from_events(mp, tag, make_event, wait_until):
    day = _run_day()
    midnight = int(datetime.datetime(day.year, day.month, day.day,
                                     tzinfo=datetime.timezone.utc).timestamp())
    u = uuid.uuid4().hex[:8]
    cat_a, cat_b = "stats-a-" + u, "stats-b-" + u

    def addr(name):
        return "%s.%s@stats.example.com" % (name, u)

    seq = iter(range(10**6))

    def ev(event, at, **kw):
        """An event `at` seconds after the day's midnight (negative: the day before)."""
        kw.setdefault("category", [cat_a])
        kw.setdefault("email", addr("rcpt%d" % next(seq)))
        return make_event(event=event, timestamp=midnight + at, **kw)

    mix = [
        ev("processed", 100, category=cat_a),                 # category as a string
        ev("processed", 110, category=[cat_a, cat_b]),
        ev("processed", 120, category=DROP),
        ev("delivered", 200, category=[cat_b, cat_b]),         # repeated category
        ev("delivered", 210),
        ev("deferred", 220),
        ev("bounce", 300, type="bounce", reason="550 5.1.1 no such user"),
        ev("bounce", 310, reason="550 no type given"),
        ev("bounce", 320, type="blocked", reason="554 blocked by policy",
           category=[cat_a, cat_b]),
        ev("dropped", 400, reason="Bounced Address"),
        ev("dropped", 410, reason="Spam Reporting Address"),
        ev("dropped", 420, reason="Unsubscribed Address"),
        ev("dropped", 430, reason="Invalid"),
        ev("dropped", 440, reason="invalid SMTPAPI header", category=[cat_b]),
        ev("dropped", 450, reason="Unknown reason"),
        # alice opens three times the same day (once in capitals): one unique open
        ev("open", 1000, email=addr("alice")),
        ev("open", 2000, email=addr("alice"), category=[cat_a, cat_b]),
        ev("open", 3000, email=addr("alice").upper()),
        ev("open", 3100, email=addr("bob"), category=cat_b),
        ev("open", 86399, email=addr("carol")),               # last second of the day
        ev("open", 86400, email=addr("alice")),               # the next day
        ev("open", -1, email=addr("alice")),                  # the day before
        ev("click", 4000, email=addr("alice"), url="https://example.com/a"),
        ev("click", 4100, email=addr("alice"), url="https://example.com/b"),
        ev("click", 4200, email=addr("bob"), url="https://example.com/a", category=DROP),
        ev("spamreport", 5000),
        ev("unsubscribe", 5100),
        ev("group_unsubscribe", 5200, asm_group_id=7),
        ev("group_resubscribe", 5300, asm_group_id=7),        # counts nowhere
    ]
    ids = {e["sg_event_id"] for e in mix}

    # Out of order: the latest first, spread over several posts; every event of the
    # third post repeats in the fourth (and once within it), and two come back at the end.
    shuffled = list(reversed(mix))
    tail = shuffled[10:]
    random.shuffle(tail)
    shuffled[10:] = tail
    posts = [shuffled[:10], shuffled[10:20], shuffled[20:]]
    posts.append(posts[2] + posts[2][:1])
    posts.append([mix[0], mix[15]])
    # A poison event in one post with counted ones, on one partition: the number 1e-20000
    # is valid JSON (ingest and the sink take it) but not a jsonb numeric, so PostgreSQL
    # refuses the batch; the sink writes it again one event per savepoint, dead-letters
    # the poison event, and the rollups must still be right.
    key = {"sg_message_id": "stats%s.filterdrecv-1.0" % u}
    marker = "%s-poison" % tag
    poison = ev("open", 6000, email=addr("poison"), mp_test_marker=marker, tiny="@TINY@")
    rescued = [ev("open", 6100 + i, email=addr("dave"), base=key) for i in range(3)]
    poison.update(key)
    posts.append(rescued[:1] + [poison] + rescued[1:])
    ids.update(e["sg_event_id"] for e in rescued)

    for body in posts:
        r = mp.post_webhook(encode(body).replace(b'"@TINY@"', b"1e-20000"))
        assert r.status_code == 200, r.text
        assert r.json()["received"] == len(body), r.text
    assert_accepted(mp.post_webhook(posts[1]), len(posts[1]))  # a whole batch again

    mp.wait_rows(tag, len(ids))
    mp.wait_sink_idle()
    wait_until(lambda: mp.dead_letters(marker), 30, desc="the poison event dead-lettered")
    assert any("refused by postgresql" in err for _t, err, _p in mp.dead_letters(marker))
    rows, distinct = mp.count_events(tag)
    assert (rows, distinct) == (len(ids), len(ids)), (
        "events stored: %d rows, %d distinct (posted %d distinct + 1 poison)"
        % (rows, distinct, len(ids)))

    lo = day - datetime.timedelta(days=1)
    hi = day + datetime.timedelta(days=2)
    expected = _nonzero(mp.query(FROM_EVENTS_SQL, lo, hi))
    got = _nonzero(mp.query(FROM_ROLLUP_SQL, lo, hi))
    assert got == expected, "stats_daily differs from events:\n got %r\nwant %r" % (
        got, expected)

    # Not vacuous: the mix's own numbers for the day, all mail and per category.
    c = dict(zip(COUNTERS, got[(day, "")]))
    dave = 3  # the opens posted with the poison event
    poison_open = 0
    assert c == dict(c, requests=9, processed=3, delivered=2, deferred=1, bounces=2,
                     blocks=1, bounce_drops=1, spam_report_drops=1, unsubscribe_drops=1,
                     invalid_emails=2, opens=5 + dave + poison_open,
                     unique_opens=3 + 1 + poison_open, clicks=3, unique_clicks=2,
                     spam_reports=1, unsubscribes=2), c
    a = dict(zip(COUNTERS, got[(day, cat_a)]))
    assert (a["requests"], a["processed"], a["opens"], a["unique_opens"], a["clicks"],
            a["unique_clicks"], a["blocks"]) == (7, 2, 4 + dave + poison_open,
                                                 2 + 1 + poison_open, 2, 1, 1), a
    b = dict(zip(COUNTERS, got[(day, cat_b)]))
    assert (b["requests"], b["delivered"], b["opens"], b["unique_opens"],
            b["invalid_emails"]) == (2, 1, 2, 2, 1), b
    for other in (day - datetime.timedelta(days=1), day + datetime.timedelta(days=1)):
        o = dict(zip(COUNTERS, got[(other, "")]))
        assert (o["opens"], o["unique_opens"]) == (1, 1), (other, o)

    # stats_unique holds each recipient once a day: alice, bob, carol, dave (+ poison)
    uniq = mp.query("select count(*) from stats_unique where day = %s and kind = 'open'"
                    " and category = '' and email like %s", day, "%." + u + "@%")[0][0]
    assert uniq == 4 + poison_open


def _reader_url(admin_url):
    """DATABASE_URL with the user swapped for the read-only role."""
    p = urllib.parse.urlsplit(admin_url)
    host = p.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(p._replace(netloc="mailpipe_reader@" + host))


def test_every_example_query_runs_as_admin_and_reader(mp):
    files = sorted(glob.glob(os.path.join(REPO, "sql", "queries", "*.sql")))
    assert len(files) >= 6, files
    problems = []
    for url in (mp.vars["DATABASE_URL"], _reader_url(mp.vars["DATABASE_URL"])):
        conn = psycopg2.connect(url, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("select current_user")
                who = cur.fetchone()[0]
                for path in files:
                    with open(path, encoding="utf-8") as f:
                        sql = f.read()
                    head = sql.lstrip().splitlines()[0] if sql.strip() else ""
                    if not head.startswith("-- " + os.path.basename(path)):
                        problems.append("%s: no comment header naming the file" % path)
                    try:
                        cur.execute(sql)
                        if cur.description is None:
                            problems.append("%s as %s: not a SELECT" % (path, who))
                        else:
                            cur.fetchall()
                    except psycopg2.Error as e:
                        problems.append("%s as %s: %s" % (os.path.basename(path), who,
                                                          str(e).strip()))
        finally:
            conn.close()
    assert not problems, "\n".join(problems)


def test_reader_can_read_the_views_but_not_write_the_rollups(mp):
    conn = psycopg2.connect(_reader_url(mp.vars["DATABASE_URL"]), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for rel in ("stats_daily", "stats_unique", "daily_stats", "category_daily_stats",
                        "daily_rates", "category_funnel", "message_timeline"):
                cur.execute("select * from %s limit 1" % rel)  # constant names only
            try:
                cur.execute("insert into stats_daily (day) values ('2000-01-01')")
            except psycopg2.errors.InsufficientPrivilege:
                pass
            else:
                raise AssertionError("the reader role could write stats_daily")
    finally:
        conn.close()
