#!/usr/bin/python3
"""tests/bench/read_api.py: the read API's latency with 1,000,000 stored events.

    /usr/bin/python3 tests/bench/read_api.py [--events N] [--messages N] [--requests N]
                                             [--run-dir DIR] [--keep] [--label TEXT]
                                             [--results DIR]

1. Starts a private stack (`ops/stack up` in a temp run dir on free loopback ports, the
   way tests/integration does), or reuses the one in --run-dir if its stack.env exists
   (then no data is loaded when `events` already holds --events rows).
2. Loads realistic data straight into PostgreSQL with COPY, as the sink and the sender
   would have written it: messages (ULID ids, one to three recipients from a pool, a
   sender from a pool, subjects from templates with order numbers, categories), their
   SendGrid events (processed, delivered, deferred, open, click, bounce, blocked, dropped,
   spamreport, unsubscribe) plus events of mail not sent through mailpipe, event_ids, the
   daily rollups (stats_daily, stats_unique) computed from those events, and suppressions.
   Then ANALYZE.
3. Measures N sequential requests per case over one keep-alive HTTPS connection through
   nginx: /v3/stats (30 days), /v3/categories/stats, /v3/messages with each query form,
   the second page via the cursor, /v3/messages/{id}, and the suppression lists when the
   running build has them.
4. Prints a table of p50 / p99 / max and appends it, with the commit, cores, memory and
   PostgreSQL version, to tests/bench/results/read-api-<date>.md.

Not part of `make test` (it takes minutes): `make bench-read` runs it.
"""

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import psycopg2  # noqa: E402
import requests  # noqa: E402

from helpers import mailpipe as mpl  # noqa: E402

TARGET_MS = 50.0
UTC = datetime.timezone.utc
DAY = 86400

SENDERS = ["news@shop.example.com", "receipts@shop.example.com", "noreply@app.example.com",
           "alerts@app.example.com", "hello@startup.example.org", "billing@saas.example.net",
           "support@saas.example.net", "team@community.example.org", "digest@media.example.com",
           "offers@retail.example.com", "security@bank.example.com", "updates@travel.example.com"]
CATEGORIES = ["newsletter", "receipts", "password-reset", "welcome", "promo", "digest",
              "alerts", "billing", "onboarding", "survey", "reengagement", "security",
              "shipping", "invoice", "weekly", "monthly", "product-update", "event-invite",
              "abandoned-cart", "referral"]
SUBJECTS = ["Your order #{n} has shipped", "Receipt for order #{n}", "Welcome to Example, {w}!",
            "Reset your password", "Your weekly digest: {w}", "Invoice {n} is ready",
            "{w}: 20% off this weekend only", "Security alert: new sign-in from {w}",
            "Your trip to {w} is confirmed (booking {n})", "We miss you, {w}",
            "Newsletter {n}: what's new in {w}", "Action required: verify your email",
            "Your subscription renews on {w}", "Survey: how did we do? ({n})",
            "Your cart is waiting", "Event invite: {w} meetup"]
WORDS = ["Lisbon", "Berlin", "autumn", "Tokyo", "Oslo", "winter", "Nairobi", "Lima",
         "Toronto", "spring", "Sydney", "Dublin", "Prague", "summer", "Quito", "Seoul"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
           "example.org", "corp.example.com", "mail.example.net", "gmx.de", "proton.me"]
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"


# --- stack ---------------------------------------------------------------------------------
def start_stack(run_dir):
    # the production settings (not the tests' short time-outs)
    return mpl.start_private_stack(REPO, run_dir=run_dir, test_env=False)


def reuse_stack(run_dir):
    env = dict(os.environ)
    env["MAILPIPE_RUN_DIR"] = run_dir
    env.setdefault("MAILPIPE_BIN_DIR", os.path.join(REPO, "build"))
    st = mpl.Stack(REPO, run_dir, env)
    st.load_env()
    return st


# --- data ----------------------------------------------------------------------------------
def ulid(ms, rnd):
    out = []
    for _ in range(10):
        out.append(CROCKFORD[ms & 31])
        ms >>= 5
    out.reverse()
    r = rnd.getrandbits(80)
    tail = []
    for _ in range(16):
        tail.append(CROCKFORD[r & 31])
        r >>= 5
    return "".join(out) + "".join(tail)


def ts_text(t):
    return datetime.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def arr(values):
    if values is None:
        return "\\N"
    return "{" + ",".join('"%s"' % v for v in values) + "}"


def esc(v):
    if v is None:
        return "\\N"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class Stream:
    """A file-like object COPY reads from, filled by a generator of text lines."""

    def __init__(self, lines):
        self.lines = lines
        self.buf = b""
        self.rows = 0

    def read(self, size=65536):
        parts = [self.buf]
        have = len(self.buf)
        while have < size:
            try:
                line = next(self.lines)
            except StopIteration:
                break
            b = line.encode("utf-8")
            parts.append(b)
            have += len(b)
            self.rows += 1
        data = b"".join(parts)
        self.buf = data[size:]
        return data[:size]

    readline = read


class Data:
    """Generates the messages and events and keeps what the rollups and the queries need."""

    def __init__(self, n_events, n_messages, days, seed=42):
        self.rnd = random.Random(seed)
        self.now = int(time.time())
        # stay inside the monthly partitions (from the 1st of last month on)
        first = datetime.datetime.fromtimestamp(self.now, UTC).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0)
        last_month = (first - datetime.timedelta(days=1)).replace(day=1)
        self.start = max(self.now - days * DAY, int(last_month.timestamp()) + DAY)
        self.n_events = n_events
        self.n_messages = n_messages
        self.recipients = ["%s.%d@%s" % (self.rnd.choice(WORDS).lower(), i,
                                         self.rnd.choice(DOMAINS))
                           for i in range(max(1000, n_messages // 4))]
        self.messages = []      # (id, created, sg_id, from, tos, subject, cats)
        self.sample_ids = []
        self.stats = {}         # (day, cat) -> counters
        self.unique = set()     # (day, kind, cat, email)
        self.suppressed = {}    # email -> (reason, sg_event_id, time)
        self.blocks = {}        # email -> (reason, status, sg_event_id, time), the latest
        self.statuses = {}      # message_id -> (status, rank, last_event_time)
        self.events_written = 0

    RANK = {"processed": 30, "deferred": 35, "delivered": 40, "open": 50, "click": 60,
            "unsubscribe": 70, "spamreport": 80, "bounce": 90, "blocked": 90, "dropped": 90}

    def make_messages(self):
        rnd = self.rnd
        span = self.now - self.start - 3 * 3600
        times = sorted(self.start + rnd.random() * span for _ in range(self.n_messages))
        for i, t in enumerate(times):
            mid = ulid(int(t * 1000), rnd)
            sg = "%016x%06x" % (rnd.getrandbits(64), i)
            ntos = 1 if rnd.random() < 0.9 else rnd.randint(2, 3)
            tos = [rnd.choice(self.recipients) for _ in range(ntos)]
            tpl = rnd.choice(SUBJECTS)
            subject = tpl.format(n=rnd.randint(100000, 999999), w=rnd.choice(WORDS))
            k = rnd.random()
            cats = (None if k < 0.2 else [rnd.choice(CATEGORIES)] if k < 0.8
                    else rnd.sample(CATEGORIES, 2))
            self.messages.append((mid, t, sg, rnd.choice(SENDERS), tos, subject, cats))

    def _count(self, day, cats, ev, typ, reason, email):
        keys = [""] + [c for c in (cats or []) if c]
        for c in dict.fromkeys(keys):
            s = self.stats.setdefault((day, c), [0] * 16)
            # requests processed delivered deferred bounces blocks bounce_drops
            # spam_report_drops unsubscribe_drops invalid_emails opens unique_opens clicks
            # unique_clicks spam_reports unsubscribes
            if ev in ("processed", "dropped"):
                s[0] += 1
            if ev == "processed":
                s[1] += 1
            elif ev == "delivered":
                s[2] += 1
            elif ev == "deferred":
                s[3] += 1
            elif ev == "bounce":
                if typ in (None, "bounce"):
                    s[4] += 1
                elif typ == "blocked":
                    s[5] += 1
            elif ev == "dropped":
                if reason == "Bounced Address":
                    s[6] += 1
                elif reason == "Spam Reporting Address":
                    s[7] += 1
                elif reason == "Unsubscribed Address":
                    s[8] += 1
                elif reason and reason.lower().startswith("invalid"):
                    s[9] += 1
            elif ev in ("open", "click"):
                s[10 if ev == "open" else 12] += 1
                key = (day, ev, c, email.lower())
                if key not in self.unique:
                    self.unique.add(key)
                    s[11 if ev == "open" else 13] += 1
            elif ev == "spamreport":
                s[14] += 1
            elif ev in ("unsubscribe", "group_unsubscribe"):
                s[15] += 1

    def _event_line(self, seq, ev, t, email, sg_msg, mid, cats, reason=None, status=None,
                    typ=None, url=None):
        rnd = self.rnd
        t = min(t, self.now - 1)
        t = int(t)
        sg_event_id = "bench-%d-%s" % (seq, format(rnd.getrandbits(40), "x"))
        raw = {"email": email, "event": ev, "timestamp": t, "sg_event_id": sg_event_id,
               "sg_message_id": sg_msg, "smtp-id": "<%s@ismtpd0001p1lon1>" % sg_msg[:22]}
        if cats:
            raw["category"] = cats if len(cats) > 1 else cats[0]
        if mid:
            raw["mailpipe_message_id"] = mid
        if reason:
            raw["reason"] = reason
        if status:
            raw["status"] = status
        if typ:
            raw["type"] = typ
        if url:
            raw["url"] = url
            raw["url_offset"] = {"index": 0, "type": "html"}
        if ev in ("open", "click"):
            raw["useragent"] = UA
            raw["ip"] = "198.51.100.%d" % rnd.randint(1, 254)
        if ev == "delivered":
            raw["response"] = "250 2.0.0 OK"
            raw["tls"] = 1
        day = datetime.datetime.fromtimestamp(t, UTC).date()
        self._count(day, cats, ev, typ, reason, email)
        if ev == "spamreport" or ev == "unsubscribe" or (ev == "bounce" and typ == "bounce"):
            self.suppressed.setdefault(email.lower(), (ev, sg_event_id, t))
        elif ev == "bounce" and typ == "blocked":
            old = self.blocks.get(email.lower())
            if old is None or old[3] < t:
                self.blocks[email.lower()] = (reason, status, sg_event_id, t)
        ts = ts_text(t)
        recv = ts_text(t + rnd.random() * 5)
        part = rnd.randint(0, 3)
        line = "\t".join((sg_event_id, ev, esc(email), ts, sg_msg, mid or "\\N", arr(cats),
                          esc(reason), esc(status), esc(typ), esc(url),
                          esc(json.dumps(raw, separators=(",", ":"))), recv, str(part),
                          str(seq))) + "\n"
        self.event_ids.append((sg_event_id, ts))
        if mid:
            r = self.RANK.get("blocked" if typ == "blocked" else ev)
            if r is not None:
                cur = self.statuses.get(mid)
                st = "blocked" if typ == "blocked" else ev
                if cur is None or r >= cur[1]:
                    self.statuses[mid] = (st, r, max(t, cur[2]) if cur else t)
                else:
                    self.statuses[mid] = (cur[0], cur[1], max(t, cur[2]))
        return line

    def event_lines(self):
        """The events of every message, then events of mail sent elsewhere, up to n."""
        rnd = self.rnd
        self.event_ids = []
        seq = 0
        per_msg_budget = int(self.n_events * 0.9)
        for (mid, t, sg, _from, tos, _subj, cats) in self.messages:
            for j, to in enumerate(tos):
                if seq >= per_msg_budget:
                    break
                sg_msg = "%s.filterdrecv-%d-%d" % (sg, j, rnd.randint(1, 99))
                t1 = t + rnd.uniform(1, 5)
                x = rnd.random()
                lines = []
                if x < 0.01:
                    why = rnd.choice(["Bounced Address", "Unsubscribed Address",
                                      "Spam Reporting Address", "Invalid"])
                    lines.append(("dropped", t1, dict(reason=why)))
                else:
                    lines.append(("processed", t1, {}))
                    t2 = t1 + rnd.uniform(1, 30)
                    if x < 0.03:
                        lines.append(("bounce", t2, dict(
                            reason="550 5.1.1 The email account that you tried to reach "
                            "does not exist.", status="5.1.1", typ="bounce")))
                    elif x < 0.04:
                        lines.append(("bounce", t2, dict(
                            reason="554 5.7.1 Service unavailable; blocked using "
                            "zen.spamhaus.org", status="5.7.1", typ="blocked")))
                    else:
                        if x < 0.08:
                            lines.append(("deferred", t2, dict(
                                response="421 try again later", reason=None)))
                            t2 += rnd.uniform(60, 900)
                        lines.append(("delivered", t2, {}))
                        if rnd.random() < 0.45:
                            t3 = t2 + rnd.expovariate(1 / 7200.0)
                            lines.append(("open", t3, {}))
                            if rnd.random() < 0.2:
                                lines.append(("open", t3 + rnd.uniform(60, 86400), {}))
                            if rnd.random() < 0.3:
                                lines.append(("click", t3 + rnd.uniform(2, 600), dict(
                                    url="https://shop.example.com/p/%d?utm_source=mail"
                                    % rnd.randint(1, 5000))))
                        y = rnd.random()
                        if y < 0.002:
                            lines.append(("spamreport", t2 + rnd.uniform(60, 86400), {}))
                        elif y < 0.006:
                            lines.append(("unsubscribe", t2 + rnd.uniform(60, 86400), {}))
                for ev, te, kw in lines:
                    kw.pop("response", None)
                    seq += 1
                    yield self._event_line(seq, ev, te, to, sg_msg, mid, cats,
                                           reason=kw.get("reason"), status=kw.get("status"),
                                           typ=kw.get("typ"), url=kw.get("url"))
        # the rest: events of mail sent by other systems (no mailpipe_message_id)
        span = self.now - self.start
        while seq < self.n_events:
            t = self.start + rnd.random() * span
            sg_msg = "%016x.filterdrecv-x-%d" % (rnd.getrandbits(64), rnd.randint(1, 99))
            ev = rnd.choices(["processed", "delivered", "open", "click", "bounce"],
                             [30, 30, 25, 10, 5])[0]
            seq += 1
            yield self._event_line(seq, ev, t, rnd.choice(self.recipients), sg_msg, None,
                                   [rnd.choice(CATEGORIES)] if rnd.random() < 0.5 else None,
                                   typ="bounce" if ev == "bounce" else None,
                                   reason="550 5.1.1 unknown user" if ev == "bounce" else None,
                                   url="https://www.example.com/" if ev == "click" else None)
        self.events_written = seq

    def message_lines(self):
        for (mid, t, sg, frm, tos, subject, cats) in self.messages:
            st = self.statuses.get(mid)
            if st is None:
                status, rank, last = "sent", 20, None
            else:
                status, rank, last = st
            req = {"personalizations": [{"to": [{"email": e} for e in tos]}],
                   "from": {"email": frm}, "subject": subject,
                   "content": [{"type": "text/html", "value": "<p>Hello</p>"}],
                   "custom_args": {"mailpipe_message_id": mid}}
            if cats:
                req["categories"] = cats
            created = ts_text(t)
            yield "\t".join((mid, "1", frm, arr(tos), esc(subject), arr(cats),
                             esc(json.dumps(req, separators=(",", ":"))), status, str(rank),
                             "1", "\\N", sg, created, ts_text(t + 1), "\\N",
                             ts_text(last) if last else "\\N",
                             ts_text(last or t + 1))) + "\n"

    def stats_lines(self):
        for (day, cat), s in sorted(self.stats.items()):
            yield "\t".join([day.isoformat(), esc(cat)] + [str(v) for v in s]) + "\n"

    def unique_lines(self):
        for (day, kind, cat, email) in self.unique:
            yield "%s\t%s\t%s\t%s\n" % (day.isoformat(), kind, esc(cat), esc(email))

    def block_lines(self):
        for email, (reason, status, sgid, t) in self.blocks.items():
            yield "%s\t%s\t%s\t%s\t%s\n" % (esc(email), esc(reason), esc(status), sgid,
                                            ts_text(t))

    def suppression_lines(self):
        rnd = self.rnd
        for email, (ev, sgid, t) in self.suppressed.items():
            yield "%s\t%s\t%s\t%s\n" % (esc(email), ev, sgid, ts_text(t))
        # older ones, from before this data set (imported lists)
        for i in range(40000):
            reason = rnd.choices(["bounce", "unsubscribe", "spamreport", "group_unsubscribe"],
                                 [60, 30, 5, 5])[0]
            t = self.start - rnd.random() * 365 * DAY
            yield "old.%d@%s\t%s\t\\N\t%s\n" % (i, rnd.choice(DOMAINS), reason, ts_text(t))


def copy(conn, table, columns, lines):
    t0 = time.monotonic()
    s = Stream(lines)
    with conn.cursor() as cur:
        cur.copy_expert("COPY %s (%s) FROM STDIN" % (table, ", ".join(columns)), s, 1 << 20)
    conn.commit()
    print("  %-14s %9d rows in %5.1f s" % (table, s.rows, time.monotonic() - t0), flush=True)
    return s.rows


def load(st, args):
    conn = psycopg2.connect(st.vars["DATABASE_URL"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        have = cur.fetchone()[0]
    conn.commit()
    if have >= args.events:
        print("events already holds %d rows: not loading" % have)
        conn.close()
        return None
    if have:
        sys.exit("events holds %d rows (fewer than %d): use a fresh run dir" % (have, args.events))
    t0 = time.monotonic()
    print("loading %d events, %d messages..." % (args.events, args.messages), flush=True)
    with conn.cursor() as cur:
        cur.execute("SELECT mailpipe_ensure_partitions()")
    conn.commit()
    d = Data(args.events, args.messages, args.days)
    d.make_messages()
    copy(conn, "events", ["sg_event_id", "event", "email", "event_time", "sg_message_id",
                          "message_id", "category", "reason", "status", "type", "url", "raw",
                          "received_at", "kafka_partition", "kafka_offset"], d.event_lines())
    copy(conn, "event_ids", ["sg_event_id", "event_time"],
         ("%s\t%s\n" % x for x in d.event_ids))
    d.event_ids = None
    copy(conn, "messages", ["message_id", "api_key_id", "from_email", "to_emails", "subject",
                            "categories", "request", "status", "status_rank", "attempts",
                            "last_error", "sendgrid_message_id", "created_at", "sent_at",
                            "next_attempt_at", "last_event_time", "updated_at"],
         d.message_lines())
    copy(conn, "stats_daily", ["day", "category", "requests", "processed", "delivered",
                               "deferred", "bounces", "blocks", "bounce_drops",
                               "spam_report_drops", "unsubscribe_drops", "invalid_emails",
                               "opens", "unique_opens", "clicks", "unique_clicks",
                               "spam_reports", "unsubscribes"], d.stats_lines())
    copy(conn, "stats_unique", ["day", "kind", "category", "email"], d.unique_lines())
    copy(conn, "suppressions", ["email", "reason", "source_event", "created_at"],
         d.suppression_lines())
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('blocks') IS NOT NULL")  # sql/010
        has_blocks = cur.fetchone()[0]
    conn.commit()
    if has_blocks:
        copy(conn, "blocks", ["email", "reason", "status", "source_event", "created_at"],
             d.block_lines())
    conn.autocommit = True
    with conn.cursor() as cur:
        t1 = time.monotonic()
        cur.execute("VACUUM ANALYZE")
        print("  VACUUM ANALYZE in %.1f s" % (time.monotonic() - t1))
    conn.close()
    took = time.monotonic() - t0
    print("loaded in %.1f s" % took, flush=True)
    return took


# --- measuring -----------------------------------------------------------------------------
def pick_values(st, rnd, n):
    """Values that exist in the data, n of each where it varies."""
    q = st.query
    v = {}
    pairs = q("SELECT to_emails[1], last_event_time FROM messages TABLESAMPLE SYSTEM (5)"
              " WHERE last_event_time IS NOT NULL LIMIT %s", n)
    rnd.shuffle(pairs)
    v["to"] = [r[0] for r in pairs]
    v["to_time"] = [r[1] for r in pairs]
    v["from"] = [r[0] for r in q("SELECT DISTINCT from_email FROM messages")]
    v["ids"] = [r[0] for r in q("SELECT message_id FROM messages TABLESAMPLE SYSTEM (5)"
                                " LIMIT %s", n)]
    v["orders"] = [r[0] for r in q(
        "SELECT substring(subject from '#([0-9]+)') FROM messages TABLESAMPLE SYSTEM (5)"
        " WHERE subject LIKE '%%#%%' LIMIT %s", n)]
    v["cats"] = [r[0] for r in q("SELECT DISTINCT c FROM messages, unnest(categories) c")]
    lo, hi = q("SELECT min(last_event_time), max(last_event_time) FROM messages")[0]
    v["range"] = (lo, hi)
    for k in ("ids", "orders"):
        rnd.shuffle(v[k])
    return v


def cases(v, rnd, today):
    """(name, path or a function of i returning the path, params function)."""
    start30 = (today - datetime.timedelta(days=29)).isoformat()

    def ts(t):
        return t.astimezone(UTC).strftime('TIMESTAMP "%Y-%m-%dT%H:%M:%SZ"')

    def window(i):
        # a day that ended 1 to 6 weeks before the newest event
        lo, hi = v["range"]
        span = min((hi - lo).total_seconds() - 8 * DAY, 35 * DAY)
        b = hi - datetime.timedelta(days=7, seconds=(i * 7919) % max(1, int(span)))
        return "last_event_time BETWEEN %s AND %s" % (ts(b - datetime.timedelta(days=1)), ts(b))

    def recent(i):
        hi = datetime.datetime.now(UTC) - datetime.timedelta(seconds=i * 60)
        return "last_event_time BETWEEN %s AND %s" % (ts(hi - datetime.timedelta(days=1)), ts(hi))

    def cyc(key):
        vals = v[key]
        return lambda i: vals[i % len(vals)]

    to, frm, ids, orders, cats = (cyc("to"), cyc("from"), cyc("ids"), cyc("orders"),
                                  cyc("cats"))
    msgs = "/v3/messages"
    return [
        ("GET /v3/stats (30 days)", "/v3/stats",
         lambda i: {"start_date": start30, "end_date": today.isoformat()}),
        ("GET /v3/stats (30 days, by week)", "/v3/stats",
         lambda i: {"start_date": start30, "aggregated_by": "week"}),
        ("GET /v3/categories/stats (2 categories, 30 days)", "/v3/categories/stats",
         lambda i: {"categories": [cats(i), cats(i + 1)], "start_date": start30}),
        ('messages: to_email="…"', msgs, lambda i: {"query": 'to_email="%s"' % to(i)}),
        ('messages: from_email="…"', msgs, lambda i: {"query": 'from_email="%s"' % frm(i)}),
        ('messages: subject LIKE "%Lisbon%" (common)', msgs,
         lambda i: {"query": 'subject LIKE "%%%s%%"' % WORDS[i % len(WORDS)]}),
        ('messages: subject LIKE "%#<order>%" (selective)', msgs,
         lambda i: {"query": 'subject LIKE "%%#%s%%"' % orders(i)}),
        ('messages: status="delivered"', msgs, lambda i: {"query": 'status="delivered"'}),
        ('messages: status="bounce" (rare)', msgs, lambda i: {"query": 'status="bounce"'}),
        ('messages: msg_id="…"', msgs, lambda i: {"query": 'msg_id="%s"' % ids(i)}),
        ('messages: categories="…"', msgs, lambda i: {"query": 'categories="%s"' % cats(i)}),
        ("messages: last_event_time BETWEEN (the last 24 h)", msgs,
         lambda i: {"query": recent(i)}),
        ("messages: last_event_time BETWEEN (1 day, 1-6 weeks ago)", msgs,
         lambda i: {"query": window(i)}),
        ('messages: from_email AND status AND categories', msgs,
         lambda i: {"query": 'from_email="%s" AND status="open" AND categories="%s"'
                    % (frm(i), cats(i))}),
        ('messages: to_email AND last_event_time', msgs,
         lambda i: {"query": 'to_email="%s" AND last_event_time BETWEEN %s AND %s' % (
             to(i), ts(v["to_time"][i % len(v["to_time"])] - datetime.timedelta(hours=12)),
             ts(v["to_time"][i % len(v["to_time"])] + datetime.timedelta(hours=12)))}),
        ("messages: page 2 (cursor), status=\"delivered\"", msgs, "PAGE2"),
        ("messages: limit=1000, status=\"delivered\"", msgs,
         lambda i: {"query": 'status="delivered"', "limit": "1000"}),
        ("GET /v3/messages/{id}", "ID", None),
        ("GET /v3/suppression/bounces", "/v3/suppression/bounces", lambda i: {}),
        ("GET /v3/suppression/blocks", "/v3/suppression/blocks", lambda i: {}),
        ("GET /v3/suppression/unsubscribes", "/v3/suppression/unsubscribes", lambda i: {}),
        ("GET /v3/suppression/spam_reports", "/v3/suppression/spam_reports", lambda i: {}),
        ("GET /v3/suppression/bounces/{email}", "SUPP_EMAIL", None),
    ]


def percentile(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def measure(st, args):
    rnd = random.Random(7)
    v = pick_values(st, rnd, args.requests)
    supp = [r[0] for r in st.query(
        "SELECT email FROM suppressions WHERE reason = 'bounce' LIMIT %s", args.requests)]
    today = datetime.datetime.now(UTC).date()
    sess = requests.Session()
    sess.headers["Authorization"] = "Bearer " + st.vars["MAILPIPE_API_KEY"]
    ca = st.vars["MAILPIPE_CA"]

    class S:  # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE
        @staticmethod
        def get(u, params=None, timeout=30):
            return sess.get(u, params=params, timeout=timeout, verify=ca)
    s = S()
    url = st.url
    rows = []
    for name, path, params in cases(v, rnd, today):
        if params == "PAGE2":
            r = s.get(url + "/v3/messages", params={"query": 'status="delivered"'}, timeout=30)
            nxt = r.json().get("next") if r.status_code == 200 else None
            if not nxt:
                rows.append((name, None, "no cursor in page 1 (%d)" % r.status_code))
                continue
            params = (lambda c: lambda i: {"query": 'status="delivered"', "after": c})(nxt)
        if path == "ID":
            def path_of(i):
                return "/v3/messages/" + v["ids"][i % len(v["ids"])]
        elif path == "SUPP_EMAIL":
            if not supp:
                rows.append((name, None, "no bounce suppressions"))
                continue

            def path_of(i):
                return "/v3/suppression/bounces/" + supp[i % len(supp)]
        else:
            path_of = (lambda p: lambda i: p)(path)
        # one warm-up request, which also tells whether the route exists
        r = s.get(url + path_of(0), params=params(0) if params else None, timeout=30)
        if r.status_code == 404 and path_of(0).startswith("/v3/suppression"):
            rows.append((name, None, "skipped: not in this build (404)"))
            continue
        if r.status_code != 200:
            rows.append((name, None, "HTTP %d: %s" % (r.status_code, r.text[:200])))
            continue
        ms = []
        bad = 0
        nres = []
        for i in range(args.requests):
            p = params(i) if params else None
            t0 = time.perf_counter()
            r = s.get(url + path_of(i), params=p, timeout=30)
            body = r.content
            ms.append((time.perf_counter() - t0) * 1000.0)
            if r.status_code != 200:
                bad += 1
            elif path == "/v3/messages":
                nres.append(len(json.loads(body).get("messages", [])))
        ms.sort()
        note = "" if not bad else "%d non-200" % bad
        if nres:
            note = (note + " " if note else "") + "avg %.1f rows" % (sum(nres) / len(nres))
        rows.append((name, (percentile(ms, 50), percentile(ms, 99), ms[-1]), note))
        print("  %-52s p50 %7.1f  p99 %7.1f  max %7.1f ms  %s"
              % (name, percentile(ms, 50), percentile(ms, 99), ms[-1], note), flush=True)
    return rows


def environment(st):
    def sh(*cmd):
        try:
            return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    # MAILPIPE_BENCH_COMMIT: for a tree that is not a git checkout (an exported snapshot)
    commit = os.environ.get("MAILPIPE_BENCH_COMMIT") or sh("git", "rev-parse", "--short", "HEAD")
    dirty = "" if os.environ.get("MAILPIPE_BENCH_COMMIT") else sh("git", "status", "--porcelain")
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pg = st.query("SHOW server_version")[0][0]
    counts = st.query("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM messages),"
                      " (SELECT count(*) FROM suppressions), (SELECT count(*) FROM stats_daily)")[0]
    migs = st.query("SELECT string_agg(name, ', ' ORDER BY name) FROM schema_migrations")[0][0] \
        if st.query("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0] else "?"
    return {"commit": commit + (" (+ uncommitted changes)" if dirty else ""),
            "cores": os.cpu_count(), "memory": mem, "cpu": cpu, "postgres": pg,
            "kernel": platform.release(), "counts": counts, "migrations": migs}


def report(rows, envinfo, args, load_s):
    now = datetime.datetime.now(UTC)
    lines = ["", "## %s%s" % (now.strftime("%Y-%m-%d %H:%M UTC"),
                              " — " + args.label if args.label else ""), "",
             "- commit %s; %s cores (%s), %s RAM; PostgreSQL %s; Linux %s" % (
                 envinfo["commit"], envinfo["cores"], envinfo["cpu"], envinfo["memory"],
                 envinfo["postgres"], envinfo["kernel"]),
             "- data: %d events, %d messages, %d suppressions, %d stats_daily rows%s" % (
                 tuple(envinfo["counts"]) + (
                     "; loaded with COPY in %.0f s" % load_s if load_s else "",)),
             "- migrations applied: %s" % envinfo["migrations"],
             "- %d sequential requests per case, one keep-alive HTTPS connection through"
             " nginx, client on the same host; target p99 < %.0f ms" % (args.requests,
                                                                        TARGET_MS),
             "",
             "| request | p50 ms | p99 ms | max ms | note |",
             "|---|---:|---:|---:|---|"]
    for name, t, note in rows:
        if t is None:
            lines.append("| %s | | | | %s |" % (name, note))
        else:
            flag = "" if t[1] < TARGET_MS else " **over %.0f ms**" % TARGET_MS
            lines.append("| %s | %.1f | %.1f | %.1f | %s%s |" % (
                name.replace("|", "\\|"), t[0], t[1], t[2], note, flag))
    text = "\n".join(lines) + "\n"
    out_dir = args.results
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "read-api-%s.md" % now.strftime("%Y-%m-%d"))
    new = not os.path.exists(path)
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write("# Read API latency with 1,000,000 stored events\n\n"
                    "Written by `tests/bench/read_api.py` (`make bench-read`).\n")
        f.write(text)
    print(text)
    print("written to %s" % os.path.relpath(path, REPO))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--days", type=int, default=45, help="spread of the data, in days")
    ap.add_argument("--requests", type=int, default=200, help="requests per case")
    ap.add_argument("--run-dir", help="reuse (or create) the stack in this run dir")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    ap.add_argument("--label", default="", help="a title for this run in the results")
    ap.add_argument("--results", default=os.path.join(HERE, "results"),
                    help="directory of the results files (default tests/bench/results)")
    args = ap.parse_args()

    own = False
    if args.run_dir and os.path.exists(os.path.join(args.run_dir, "stack.env")):
        st = reuse_stack(args.run_dir)
        print("reusing the stack in %s" % args.run_dir)
    else:
        run_dir = args.run_dir or tempfile.mkdtemp(prefix="mailpipe-bench-")
        os.makedirs(run_dir, exist_ok=True)
        print("starting a stack in %s ..." % run_dir, flush=True)
        st = start_stack(run_dir)
        own = True
    try:
        mpl.wait_until(lambda: st.request("GET", "/readyz", timeout=5).status_code == 200,
                       timeout=60, desc="/readyz")
        load_s = load(st, args)
        rows = measure(st, args)
        report(rows, environment(st), args, load_s)
    finally:
        if own and not args.keep:
            # a --run-dir given is the caller's: stopped, not removed
            for title, text in mpl.stop_private_stack(st, keep=bool(args.run_dir)):
                print("%s: %s" % (title, text))
        elif own:
            print("stack left running: %s (ops/stack down with MAILPIPE_RUN_DIR=%s)"
                  % (st.run_dir, st.run_dir))


if __name__ == "__main__":
    main()
