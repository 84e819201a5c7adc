"""The built-in dashboard (nginx/dashboard, served at /dashboard/) and the endpoint behind
its live chart, GET /mailpipe/v1/events/per_minute (fcgi/query_minutes.c over the
stats_minute rollup, sql/011).

A known mix of signed webhook events is posted for today, spread over the last few
minutes, and one mail fails for good (the simulator answers 400). The endpoint must
count the mix exactly (and not count replays twice); headless Chromium then renders the
dashboard with the key in the URL fragment, and the rendered DOM (and, when tesseract is
installed, the screenshot's OCR) must show the same numbers, the failed message and a
chart with data. Every expectation is "what was there before + the mix": a fresh stack
has nothing before, so the numbers are the mix itself.

The screenshot of the run is kept in tests/integration/artifacts/ (ignored by git).
"""

import datetime
import html.parser
import http.client
import os
import re
import shutil
import signal
import ssl
import struct
import subprocess
import time
import uuid
import zlib

import pytest

from helpers import mailpipe as mpl

UTC = datetime.timezone.utc
PER_MINUTE = "/mailpipe/v1/events/per_minute"
KNOWN_EVENTS = ("processed", "dropped", "delivered", "deferred", "bounce", "open", "click",
                "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe")
FUNNEL = ("requests", "processed", "delivered", "unique_opens", "unique_clicks", "bounces",
          "spam_reports")
WINDOW = (1400, 1800)
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TESSERACT = shutil.which("tesseract")

# the mix: (event, how many, extra fields); opens and clicks repeat some recipients
N_OPEN_RCPTS, N_CLICK_RCPTS = 23, 11
MIX = (
    ("processed", 47, {}),
    ("dropped", 5, {"reason": "Bounced Address"}),
    ("delivered", 38, {}),
    ("deferred", 4, {"response": "421 try again later"}),
    ("bounce", 6, {"type": "bounce", "reason": "550 5.1.1 unknown user"}),
    ("open", 29, {}),
    ("click", 13, {"url": "https://example.com/x"}),
    ("spamreport", 3, {}),
    ("custom_dashboard_event", 2, {}),
)
# what /v3/stats counts of it (sql/008 rules)
MIX_STATS = {"requests": 52, "processed": 47, "delivered": 38, "unique_opens": N_OPEN_RCPTS,
             "unique_clicks": N_CLICK_RCPTS, "bounces": 6, "spam_reports": 3}


def minute_of(ts):
    return datetime.datetime.fromtimestamp(ts - ts % 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ulid_time(ulid):
    """"YYYY-MM-DD HH:MM:SS" (UTC) of the millisecond time at the start of a ULID."""
    ms = 0
    for ch in ulid[:10]:
        ms = ms * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(ch)
    return datetime.datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def auth(key):
    return {"Authorization": "Bearer " + key}


def get_minutes(mp, key, minutes=60):
    r = mp.request("GET", PER_MINUTE, params={"minutes": str(minutes)}, headers=auth(key))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()["minutes"]


def minute_counts(minutes):
    """{(minute, event): count} of an answer."""
    return {(m["minute"], ev): n for m in minutes for ev, n in m["counts"].items()}


def stats_totals(mp, key):
    """(today's metrics, the last 7 days' summed metrics) from /v3/stats, UTC days."""
    today = datetime.datetime.now(UTC).date()
    first = today - datetime.timedelta(days=6)
    r = mp.request("GET", "/v3/stats", headers=auth(key),
                   params={"start_date": first.isoformat(), "end_date": today.isoformat(),
                           "aggregated_by": "day"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    day, week = {}, {}
    for d in r.json():
        m = d["stats"][0]["metrics"]
        for k, v in m.items():
            week[k] = week.get(k, 0) + v
        if d["date"] == today.isoformat():
            day = dict(m)
    return day, week


def scan_events(mp, start, end):
    """{(minute, event): count} of events in [start, end) counted from events itself, the
    way stats_minute counts them."""
    rows = mp.query(
        "select to_char(date_trunc('minute', event_time at time zone 'UTC'),"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        " case when event = any(%s) then event else 'other' end, count(*)"
        " from events where event_time >= %s and event_time < %s group by 1, 2",
        list(KNOWN_EVENTS), start, end)
    return {(m, e): n for m, e, n in rows}


def scan_rollup(mp, start, end):
    """{(minute, event): count} of stats_minute in [start, end)."""
    rows = mp.query(
        "select to_char(minute at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        " event, count from stats_minute where minute >= %s and minute < %s", start, end)
    return {(m, e): n for m, e, n in rows}


def diff(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def quiesce(mp):
    """Nothing of earlier tests still on its way into the rollups."""
    mp.wait_sender_idle()
    mp.wait_sim_quiet()
    mp.wait_sink_idle()


def post_all(mp, events):
    for i in range(0, len(events), 50):
        batch = events[i:i + 50]
        mpl.assert_accepted(mp.post_webhook(batch), len(batch))


@pytest.fixture(scope="module")
def key(mp):
    return mp.api_key


@pytest.fixture(scope="module")
def posted(mp, key):
    """Posts the mix and fails one mail; returns what the tests compare against."""
    # every event must fall on today (UTC) and inside the chart's hour
    now = datetime.datetime.now(UTC)
    to_midnight = (86400 - (now.hour * 3600 + now.minute * 60 + now.second))
    since_midnight = now.hour * 3600 + now.minute * 60 + now.second
    if since_midnight < 300:
        time.sleep(300 - since_midnight)
    elif to_midnight < 600:  # the tests that follow must still see the same day
        time.sleep(to_midnight + 301)
    quiesce(mp)
    before_minutes = minute_counts(get_minutes(mp, key))
    before_day, before_week = stats_totals(mp, key)
    span = (now.replace(second=0, microsecond=0) - datetime.timedelta(minutes=30),
            now + datetime.timedelta(minutes=30))
    before_scan, before_rollup = scan_events(mp, *span), scan_rollup(mp, *span)

    tag = "dash_%s" % uuid.uuid4().hex[:10]
    open_rcpts = [mpl.unique_address("o") for _ in range(N_OPEN_RCPTS)]
    click_rcpts = [mpl.unique_address("c") for _ in range(N_CLICK_RCPTS)]
    t0 = int(time.time())
    events, expect_minutes, i = [], {}, 0
    for name, n, extra in MIX:
        for k in range(n):
            ts = t0 - 60 * (i % 4) - (i % 7)     # the current minute and 3 before
            i += 1
            if name == "open":
                email = open_rcpts[k % N_OPEN_RCPTS]
            elif name == "click":
                email = click_rcpts[k % N_CLICK_RCPTS]
            else:
                email = mpl.unique_address()
            ev = mpl.new_event(tag, event=name, timestamp=ts, email=email, **extra)
            events.append(ev)
            key_ = (minute_of(ts), name if name in KNOWN_EVENTS else "other")
            expect_minutes[key_] = expect_minutes.get(key_, 0) + 1
    post_all(mp, events)

    # one mail that SendGrid (the simulator) refuses for good: 400 -> failed
    mp.sim_faults(status=400, count=1)
    try:
        failed_id = mp.send_ok(mpl.mail_body(subject="dashboard failed send %s" % tag))
        mp.wait_status(failed_id, "failed", timeout=30)
    finally:
        mp.sim_clear()
    mp.wait_sink_idle()
    mpl.wait_until(lambda: mp.count_events(tag)[0] == len(events), 30,
                   desc="every posted event in events")
    return {
        "tag": tag, "events": events, "failed_id": failed_id,
        "before_minutes": before_minutes, "expect_minutes": expect_minutes, "span": span,
        "before_scan": before_scan, "before_rollup": before_rollup,
        "day": {m: before_day.get(m, 0) + MIX_STATS[m] for m in FUNNEL},
        "week": {m: before_week.get(m, 0) + MIX_STATS[m] for m in FUNNEL},
    }


# --- GET /mailpipe/v1/events/per_minute ----------------------------------------------


def test_per_minute_counts_the_mix_exactly(mp, key, posted):
    added = diff(minute_counts(get_minutes(mp, key)), posted["before_minutes"])
    assert added == posted["expect_minutes"]
    assert "other" in {ev for _, ev in added}, "the unknown event name counts as 'other'"


def test_per_minute_matches_the_events_table(mp, posted):
    """What the rollup gained is what a scan of events says was added (a difference, so
    that whatever other tests did to either table before does not matter)."""
    span = posted["span"]
    scanned = diff(scan_events(mp, *span), posted["before_scan"])
    rolled = diff(scan_rollup(mp, *span), posted["before_rollup"])
    assert rolled == scanned == posted["expect_minutes"]


def test_per_minute_does_not_count_replays(mp, key, posted):
    before = get_minutes(mp, key)
    day_before, _ = stats_totals(mp, key)
    replay = posted["events"][:40]
    post_all(mp, replay)
    mp.wait_sink_idle()
    assert mp.count_events(posted["tag"])[0] == len(posted["events"])
    after = get_minutes(mp, key)
    # the same window, or one minute later when a minute went by
    shift = len([m for m in before if m["minute"] < after[0]["minute"]])
    assert minute_counts(after[:len(after) - shift]) == minute_counts(before[shift:])
    assert stats_totals(mp, key)[0] == day_before


def test_per_minute_answers_every_minute_oldest_first(mp, key):
    for n, want in ((None, 60), ("1", 1), ("5", 5), ("1440", 1440)):
        params = {"minutes": n} if n is not None else {}
        t_before = datetime.datetime.now(UTC).replace(second=0, microsecond=0)
        r = mp.request("GET", PER_MINUTE, params=params, headers=auth(key))
        t_after = datetime.datetime.now(UTC).replace(second=0, microsecond=0)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert r.headers["Content-Type"].startswith("application/json")
        minutes = r.json()["minutes"]
        assert len(minutes) == want
        times = [datetime.datetime.strptime(m["minute"], "%Y-%m-%dT%H:%M:%SZ")
                 .replace(tzinfo=UTC) for m in minutes]
        assert all(b - a == datetime.timedelta(minutes=1) for a, b in zip(times, times[1:]))
        assert t_before <= times[-1] <= t_after
        for m in minutes:
            assert set(m) == {"minute", "counts"}
            assert all(isinstance(v, int) and v > 0 for v in m["counts"].values()), m


@pytest.mark.parametrize("value", ["0", "1441", "-1", "", "abc", "1.5", "60 ", "99999",
                                   "0x10"])
def test_per_minute_rejects_bad_minutes(mp, key, value):
    r = mp.request("GET", PER_MINUTE, params={"minutes": value}, headers=auth(key))
    body = mpl.assert_json_error(r, 400)
    assert body["errors"][0]["field"] == "minutes", body
    assert "1 to 1440" in body["errors"][0]["message"], body


def test_per_minute_rejects_a_broken_query_string(mp, key):
    r = mp.request("GET", PER_MINUTE + "?minutes=%zz", headers=auth(key))
    mpl.assert_json_error(r, 400)


def test_per_minute_needs_a_key_with_stats_read(mp):
    r = mp.request("GET", PER_MINUTE)
    mpl.assert_json_error(r, 401)
    r = mp.request("GET", PER_MINUTE, headers=auth("mp_nothere_" + "x" * 43))
    mpl.assert_json_error(r, 401)
    send_only, _ = mp.create_api_key("dashboard-send-only", "mail.send")
    r = mpl.wait_until(
        lambda: [x for x in [mp.request("GET", PER_MINUTE, headers=auth(send_only))]
                 if x.status_code != 401], 30, desc="query to load the new key")[0]
    body = mpl.assert_json_error(r, 403)
    assert "stats.read" in body["errors"][0]["message"], body


def test_per_minute_is_get_only(mp, key):
    r = mp.request("POST", PER_MINUTE, headers=auth(key), data=b"{}")
    mpl.assert_json_error(r, 405)


# --- the static page -------------------------------------------------------------------


def raw_get(mp, path, method="GET"):
    """(status, headers, body) of path sent exactly as given (no client-side
    normalisation of '..' or percent escapes)."""
    port = int(mp.url.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=mp.vars["MAILPIPE_CA"])
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_dashboard_is_served_without_a_key(mp):
    status, h, body = raw_get(mp, "/dashboard/")
    assert status == 200, (status, body[:200])
    assert h["content-type"] == "text/html; charset=utf-8", h
    assert b"<title>mailpipe dashboard</title>" in body
    assert h.get("cache-control") == "no-cache", h
    csp = h.get("content-security-policy", "")
    assert "default-src 'self'" in csp, csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assert h.get("x-content-type-options") == "nosniff", h
    # no CDN, no external fonts: every reference is relative
    assert not re.search(rb"(src|href)=\"(https?:)?//", body), body[:500]
    for path, ctype in (("/dashboard/index.html", "text/html; charset=utf-8"),
                        ("/dashboard/dashboard.js", "application/javascript; charset=utf-8"),
                        ("/dashboard/dashboard.css", "text/css; charset=utf-8")):
        status, h, body = raw_get(mp, path)
        assert status == 200, (path, status)
        assert h["content-type"] == ctype, (path, h)
        assert h.get("cache-control") == "no-cache", (path, h)
        assert "default-src 'self'" in h.get("content-security-policy", ""), (path, h)
    status, h, _ = raw_get(mp, "/dashboard")
    assert status == 301 and h["location"] in ("/dashboard/", mp.url + "/dashboard/"), (
        status, h)
    status, _, _ = raw_get(mp, "/dashboard/", method="POST")
    assert status in (403, 405), status


def test_dashboard_data_calls_need_the_key(mp):
    today = datetime.datetime.now(UTC).date().isoformat()
    for path in (PER_MINUTE + "?minutes=60", "/v3/stats?start_date=" + today,
                 "/v3/messages?query=status%3D%22failed%22&limit=10"):
        r = mp.request("GET", path)
        mpl.assert_json_error(r, 401)


def test_dashboard_refuses_traversal_dot_files_and_listing(mp):
    served = os.path.join(mp.run_dir, "nginx", "dashboard")
    assert os.path.isfile(os.path.join(served, "index.html"))
    secret = "dashboard-secret-%s" % uuid.uuid4().hex
    # a dot file and a directory put there behind nginx's back: still not served
    with open(os.path.join(served, ".hidden"), "w", encoding="ascii") as f:
        f.write(secret)
    os.makedirs(os.path.join(served, "sub", ".git"), exist_ok=True)
    with open(os.path.join(served, "sub", ".git", "config"), "w", encoding="ascii") as f:
        f.write(secret)
    with open(os.path.join(mp.run_dir, "outside.txt"), "w", encoding="ascii") as f:
        f.write(secret)
    try:
        for path in ("/dashboard/.hidden", "/dashboard/%2ehidden", "/dashboard/sub/.git/config",
                     "/dashboard/sub/%2Egit/config", "/dashboard/sub/",
                     "/dashboard/../etc/passwd", "/dashboard/../../../../etc/passwd",
                     "/dashboard/..%2f..%2f..%2fetc/passwd",
                     "/dashboard/%2e%2e/%2e%2e/%2e%2e/outside.txt",
                     "/dashboard/../../outside.txt", "/dashboard../outside.txt",
                     "/dashboard/..%2Foutside.txt", "/dashboard/..%5c..%5coutside.txt",
                     "/dashboard//etc/passwd", "/dashboard/%00index.html"):
            status, h, body = raw_get(mp, path)
            assert status in (400, 403, 404), (path, status, body[:200])
            assert secret.encode() not in body and b"root:" not in body, (path, body[:200])
            assert b"Index of" not in body, (path, body[:200])
    finally:
        os.remove(os.path.join(served, ".hidden"))
        shutil.rmtree(os.path.join(served, "sub"))
        os.remove(os.path.join(mp.run_dir, "outside.txt"))


# --- the page in headless Chromium ------------------------------------------------------


class DomIndex(html.parser.HTMLParser):
    """Text and attributes of the elements that have an id, plus a few element kinds."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.by_id = {}          # id -> {"attrs":..., "text": ...}
        self.rows = []           # attrs of <tr data-msg-id>
        self.rects = []          # attrs of <rect data-count>
        self.legend = []         # attrs of <li data-event>
        self.errors = {}         # panel id -> error text
        self._open = []          # [(tag, id, text parts)]
        self._panel = None

    VOID = {"meta", "link", "input", "br", "img", "hr"}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-msg-id" in a:
            self.rows.append(a)
        if tag == "rect" and "data-count" in a:
            self.rects.append(a)
        if tag == "li" and "data-event" in a:
            self.legend.append(a)
        if tag == "section" and a.get("id", "").startswith("panel-"):
            self._panel = a["id"]
        if "id" in a:
            self.by_id[a["id"]] = {"attrs": a, "text": ""}
        if tag == "p" and "panel-error" in a.get("class", "") and self._panel:
            a = dict(a, id="error-" + self._panel)
            self.by_id[a["id"]] = {"attrs": a, "text": ""}
        if tag not in self.VOID:
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag):
        for k in range(len(self._open) - 1, -1, -1):
            if self._open[k][0] == tag:
                del self._open[k:]
                break

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.by_id[ident]["text"] += data

    def text(self, ident):
        return self.by_id[ident]["text"].strip()


def run_chromium(tmp_path, url, *extra, budget_ms=12000, timeout=120):
    """Runs headless Chromium once on url (its profile under tmp_path); stdout. Kills its
    own process group, and only that, if it hangs."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
           "--ignore-certificate-errors", "--user-data-dir=%s" % profile,
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
           "--virtual-time-budget=%d" % budget_ms,
           "--window-size=%d,%d" % WINDOW] + list(extra) + [url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("chromium did not finish within %ds" % timeout) from None
    finally:
        try:   # helpers it left behind (crashpad, zygote) are in its own group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, "chromium exited %d: %s" % (
        proc.returncode, err.decode("utf-8", "replace")[-2000:])
    return out.decode("utf-8", "replace")


def render(mp, tmp_path, key):
    """The dashboard's DOM after it loaded its data (one retry when Chromium's virtual time
    ran out before the first refresh finished)."""
    url = "%s/dashboard/#key=%s" % (mp.url, key)
    for attempt in range(3):
        dom = DomIndex()
        dom.feed(run_chromium(tmp_path, url, "--dump-dom",
                              budget_ms=12000 * (attempt + 1)))
        if dom.by_id.get("last-update") and dom.text("last-update") != "never":
            return dom
    raise AssertionError("the dashboard never finished a refresh")


def png_info(path):
    """(width, height, distinct colours, share of dark pixels) of an 8-bit RGB(A) PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    width, height, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours, dark, pos = bytearray(stride), set(), 0, 0
    for _ in range(height):
        ftype, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        for x in range(0, stride, bpp * 4):  # every 4th pixel is plenty
            px = bytes(line[x:x + 3])
            colours.add(px)
            dark += sum(px) < 200
        prev = line
    return width, height, len(colours), dark / (width * height / 4)


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(ops/install-deps installs it)")


@needs_chromium
def test_dashboard_shows_the_posted_numbers(mp, key, posted, tmp_path):
    quiesce(mp)
    dom = render(mp, tmp_path, key)
    for panel in ("panel-funnel", "panel-minutes", "panel-failed"):
        assert dom.by_id[panel]["attrs"].get("data-state") == "ok", (
            panel, dom.text("error-" + panel))
    for period in ("day", "week"):
        prefix = "today" if period == "day" else "week"
        want = posted[period]
        got = {m: dom.text("%s-%s" % (prefix, m)) for m in FUNNEL}
        assert got == {m: str(v) for m, v in want.items()}, (period, got, want)
        assert dom.text(prefix + "-bounce-rate") == "%.2f%%" % (
            100.0 * want["bounces"] / want["requests"])
        assert dom.text(prefix + "-complaint-rate") == "%.2f%%" % (
            100.0 * want["spam_reports"] / want["delivered"])
    assert dom.text("today-date") == datetime.datetime.now(UTC).date().isoformat()

    # the failed send, newest first
    ids = [r["data-msg-id"] for r in dom.rows]
    assert posted["failed_id"] in ids, ids
    assert ids[0] == posted["failed_id"], ids
    assert "failed" in dom.text("failed-rows")
    # no event carries a time for a mail SendGrid refused: the page shows when it was
    # accepted, from the ULID
    assert ulid_time(posted["failed_id"]) in dom.text("failed-rows"), dom.text("failed-rows")

    # the chart: a bar per (minute, event) that has events, the legend sums them
    assert dom.rects, "the events-per-minute chart is empty"
    legend = {li["data-event"]: int(li["data-count"]) for li in dom.legend}
    bars = {}
    for rect in dom.rects:
        bars[rect["data-event"]] = bars.get(rect["data-event"], 0) + int(rect["data-count"])
    assert legend == bars
    for name, n, _ in MIX:
        shown = name if name in KNOWN_EVENTS else "other"
        assert legend.get(shown, 0) >= n, (shown, legend)
    now_minutes = get_minutes(mp, key)
    total = sum(sum(m["counts"].values()) for m in now_minutes)
    assert int(dom.by_id["minutes-chart"]["attrs"]["data-total"]) <= total

    # the pipeline panel: numbers from /metrics, or a clear "metrics unavailable"
    state = dom.by_id["panel-pipeline"]["attrs"].get("data-state")
    if state == "ok":
        assert re.fullmatch(r"\d+/\d+", dom.text("processes-up")), dom.text("processes-up")
    else:
        assert dom.text("error-panel-pipeline"), "the pipeline panel failed without a word"

    # the key stays out of nginx's logs: it travels in the URL fragment, never in a URL
    nginx_logs = [p for p in mp.logs_containing(key) if "nginx" in os.path.basename(p)]
    assert not nginx_logs, nginx_logs
    assert mp.logs_containing("GET /dashboard/ "), "the page was not fetched through nginx"


@needs_chromium
def test_dashboard_screenshot(mp, key, posted, tmp_path):
    quiesce(mp)
    shot = tmp_path / "dashboard.png"
    run_chromium(tmp_path, "%s/dashboard/#key=%s" % (mp.url, key), "--screenshot=%s" % shot)
    assert shot.is_file()
    width, height, colours, dark = png_info(str(shot))
    assert (width, height) == WINDOW
    assert colours > 8, "the screenshot is blank (%d colours)" % colours
    assert dark > 0.003, "the screenshot has almost no text (%.4f dark)" % dark
    os.makedirs(ARTIFACTS, exist_ok=True)
    shutil.copyfile(shot, os.path.join(ARTIFACTS, "dashboard.png"))
    if TESSERACT is None:
        print("tesseract is not installed: no OCR of the screenshot")
        return
    ocr = subprocess.run([TESSERACT, str(shot), "stdout", "--psm", "11"], timeout=120,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
                         stdin=subprocess.DEVNULL).stdout.decode("utf-8", "replace")
    tokens = set(re.findall(r"\d+(?:\.\d+)?%?", ocr))
    # the funnel's tiles: the many-digit numbers are the ones OCR cannot find by chance
    want = {str(v) for v in posted["day"].values() if v >= 10}
    want.add("%.2f%%" % (100.0 * posted["day"]["bounces"] / posted["day"]["requests"]))
    missing = want - tokens
    assert not missing, "OCR did not find %s in:\n%s" % (sorted(missing), ocr)


@needs_chromium
def test_dashboard_says_which_scope_the_key_lacks(mp, tmp_path):
    send_only, _ = mp.create_api_key("dashboard-no-stats", "mail.send")
    mpl.wait_until(lambda: mp.request("GET", PER_MINUTE, headers=auth(send_only))
                   .status_code == 403, 30, desc="query to load the new key")
    dom = render(mp, tmp_path, send_only)
    for panel in ("panel-funnel", "panel-minutes", "panel-failed"):
        assert dom.by_id[panel]["attrs"].get("data-state") == "error", panel
        assert dom.text("error-" + panel) == "403: the API key lacks stats.read", (
            panel, dom.text("error-" + panel))
    assert dom.by_id["panel-pipeline"]["attrs"].get("data-state") == "error"
    assert dom.text("error-panel-pipeline").startswith(
        ("403: the API key lacks metrics.read", "metrics unavailable")), (
            dom.text("error-panel-pipeline"))
    assert dom.by_id["today-delivered"]["text"].strip() == "–"


@needs_chromium
def test_dashboard_without_a_key_asks_for_one(mp, tmp_path):
    dom = DomIndex()
    dom.feed(run_chromium(tmp_path, mp.url + "/dashboard/", "--dump-dom", budget_ms=5000))
    assert dom.text("key-source") == "no key yet"
    assert dom.text("error-panel-funnel").startswith("401:"), dom.text("error-panel-funnel")
    assert "enter an API key" in dom.text("error-panel-funnel")
