"""`mailpipectl dlq list|show|replay|discard` against the real stack.

A dead letter is made the way production makes it: a mail SendGrid (the simulator)
refuses with a 400, an event PostgreSQL refuses (a CHECK constraint the test adds on
event_ids, the "bug" the operator then fixes by dropping it), an event ingest finds
invalid (sendgrid.events.dlq).  Replays must reach the source topic, be marked only once
Kafka took them, and change nothing the second time.
"""

import datetime
import json
import re
import time

import pytest

from helpers.mailpipe import (DELIVERED_OR_BEYOND, DLQ_TOPIC, DROP, EVENTS_TOPIC,
                              MAIL_TOPIC, REDIS_PREFIX, encode, mail_body, new_event,
                              wait_until)

SG_400_MESSAGE = "The from email does not contain a valid address."
COUNT_RE = re.compile(r"^(\d+) dead letters?$", re.M)


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def start_time(mp):
    """A --since bound for a test's own dead letters: now, and after every row already
    in dead_letters (a fast machine ends the previous test within a fraction of a
    second, so "now minus a margin" would take in its rows)."""
    conn = mp.db()
    try:
        with conn.cursor() as cur:
            cur.execute("select coalesce(extract(epoch from max(created_at)), 0)::float8"
                        " from dead_letters")
            latest = cur.fetchone()[0]
    finally:
        conn.close()
    return max(time.time(), latest + 0.001)


def dlq(mp, *args, check=True):
    return mp.mailpipectl("dlq", *args, check=check)


def dead_rows(mp, marker):
    """dead_letters rows whose payload holds marker, oldest first, as dicts."""
    conn = mp.db()
    try:
        with conn.cursor() as cur:
            cur.execute("select id, topic, kafka_partition, kafka_offset, error, created_at,"
                        " replayed_at, replay_count, discarded_at, payload from dead_letters"
                        " where position(convert_to(%s, 'UTF8') in payload) > 0 order by id",
                        (marker,))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        conn.close()


def wait_dead(mp, marker, n=1, timeout=30):
    def enough():
        rows = dead_rows(mp, marker)
        return rows if len(rows) >= n else None
    return wait_until(enough, timeout, interval=0.1,
                      desc="%d dead letter(s) holding %s" % (n, marker))


def listed_ids(out):
    """The ids of `dlq list`'s table."""
    return [int(line.split()[0]) for line in out.splitlines()[1:]
            if line.strip() and line.split()[0].isdigit() and "dead letter" not in line]


def list_count(out):
    m = COUNT_RE.search(out)
    assert m, "no count line in %r" % out
    return int(m.group(1))


def failed_mail(mp, sim, marker):
    """A mail SendGrid refuses for good while the fault lasts; (message id, dead letter)."""
    mp.wait_sender_idle()
    sim.faults(status=400, count=1000)   # the outage: every send refused until the fix
    mid = mp.send_ok(mail_body(marker=marker))
    row = mp.wait_status(mid, "failed", timeout=30)
    assert row["attempts"] == 1, row
    return mid, wait_dead(mp, mid)[0]


def test_a_failed_mail_replayed_after_the_fix_is_sent_once(mp, sim, tag):
    t0 = start_time(mp)
    mid, dl = failed_mail(mp, sim, tag)
    assert dl["topic"] == MAIL_TOPIC and SG_400_MESSAGE in dl["error"], dl
    assert dl["replayed_at"] is None and dl["replay_count"] == 0, dl
    r = mp.redis()
    assert r.hget(REDIS_PREFIX + "msg:" + mid, "state") == "failed"

    # the operator finds it ...
    out = dlq(mp, "list", "--topic", MAIL_TOPIC, "--pending", "--since", iso(t0)).stdout
    assert listed_ids(out) == [dl["id"]], out
    assert list_count(out) == 1, out
    assert "mail.requests  %d/%d" % (dl["kafka_partition"], dl["kafka_offset"]) in out, out
    shown = dlq(mp, "show", str(dl["id"])).stdout
    assert '  "message_id": "%s",' % mid in shown, shown   # pretty-printed JSON
    assert SG_400_MESSAGE in shown, shown

    # ... a dry run changes nothing ...
    out = dlq(mp, "replay", "--dry-run", str(dl["id"])).stdout
    assert "would replay 1 dead letter," in out, out
    assert "message %s" % mid in out, out
    assert dead_rows(mp, mid)[0]["replayed_at"] is None
    assert mp.message(mid)["status"] == "failed"

    # ... a replay before the fix fails again: a new dead letter, the old one replayed
    out = dlq(mp, "replay", str(dl["id"])).stdout
    assert "replayed 1 dead letter (1 failed mail reset)" in out, out
    rows = wait_dead(mp, mid, 2)
    assert rows[0]["replayed_at"] is not None and rows[0]["replay_count"] == 1, rows[0]
    assert rows[1]["replayed_at"] is None and rows[1]["topic"] == MAIL_TOPIC, rows[1]
    mp.wait_status(mid, "failed", timeout=30)
    assert mp.sim_count(mid) == 0

    # the fix; then the replay by filters takes only the pending one
    sim.clear()
    out = dlq(mp, "replay", "--topic", MAIL_TOPIC, "--reason", "FROM EMAIL",
              "--since", iso(t0)).stdout
    assert "replayed 1 dead letter (1 failed mail reset), 0 skipped" in out, out
    row = mp.wait_status(mid, DELIVERED_OR_BEYOND, timeout=30)
    assert mp.sim_count(mid) == 1
    assert row["attempts"] == 1, row      # a fresh set of attempts
    assert row["sendgrid_message_id"] == mp.sim_messages(mid)["x_message_ids"][0]
    rows = dead_rows(mp, mid)
    assert len(rows) == 2 and all(x["replayed_at"] for x in rows), rows
    assert r.hget(REDIS_PREFIX + "msg:" + mid, "state") == "sent"

    # replaying again (by id: replayed ones too) publishes, and the sender does nothing
    out = dlq(mp, "replay", str(rows[0]["id"]), str(rows[1]["id"])).stdout
    assert "replayed 2 dead letters (0 failed mails reset)" in out, out
    recs = mp.kafka_records(mid, [MAIL_TOPIC])
    replays = [x for x in recs if "mailpipe_replay_of" in x["headers"]]
    assert len(recs) == 5 and len(replays) == 4, recs
    mp.wait_sender_idle()
    time.sleep(1)
    assert mp.sim_count(mid) == 1, "the mail was sent again"
    assert mp.message(mid)["status"] in DELIVERED_OR_BEYOND
    assert len(dead_rows(mp, mid)) == 2, "a replay made a new dead letter"
    assert [x["replay_count"] for x in dead_rows(mp, mid)] == [2, 2]


def test_an_event_postgresql_refused_is_stored_once_after_the_fix(mp, tag):
    ev = new_event(tag, mp_test_marker=tag)
    ok = new_event(tag)
    cname = "mp_test_refuse_%s" % tag.split("_")[-1]
    # the "bug": PostgreSQL refuses this one event (SQLSTATE 23514, a data error)
    mp.query("alter table event_ids add constraint %s check (sg_event_id <> '%s')"
             % (cname, ev["sg_event_id"]))
    try:
        r = mp.post_webhook([ok, ev])
        assert r.status_code == 200, r.text
        mp.wait_rows(tag, 1)
        dl = wait_dead(mp, tag)[0]
    finally:
        mp.query("alter table event_ids drop constraint if exists %s" % cname)   # the fix
    assert dl["topic"] == EVENTS_TOPIC, dl
    assert "refused by postgresql" in dl["error"] and cname in dl["error"], dl
    mp.wait_sink_idle()
    assert mp.count_events(tag) == (1, 1)
    # the sink's "already written" marker only for what was written
    r = mp.redis()
    assert r.exists(REDIS_PREFIX + "ev:" + ok["sg_event_id"])
    assert not r.exists(REDIS_PREFIX + "ev:" + ev["sg_event_id"]), "marker on a refused event"

    out = dlq(mp, "list", "--reason", cname).stdout
    assert listed_ids(out) == [dl["id"]], out

    out = dlq(mp, "replay", str(dl["id"])).stdout
    assert "replayed 1 dead letter" in out, out
    mp.wait_rows(tag, 2)
    mp.wait_sink_idle()
    rows = mp.event_rows(tag)
    assert len(rows[ev["sg_event_id"]]) == 1, rows
    assert rows[ev["sg_event_id"]][0]["raw"]["mp_test_marker"] == tag
    replayed = [x for x in mp.kafka_records(ev["sg_event_id"], [EVENTS_TOPIC])
                if x["headers"].get("mailpipe_replay_of") == str(dl["id"])]
    assert len(replayed) == 1, replayed

    # twice: one more record, the same rows, no new dead letter
    dlq(mp, "replay", str(dl["id"]))
    wait_until(lambda: len(mp.kafka_records(ev["sg_event_id"], [EVENTS_TOPIC])) == 3, 10,
               desc="the second replay's record")
    mp.wait_sink_idle()
    assert mp.count_events(tag) == (2, 2)
    rows = dead_rows(mp, tag)
    assert len(rows) == 1 and rows[0]["replay_count"] == 2, rows


def test_an_invalid_event_goes_back_to_the_events_topic(mp, tag):
    """A dead letter of sendgrid.events.dlq is replayed to sendgrid.events; still invalid,
    the sink dead-letters it there (the fix for such an event is a new validator)."""
    bad = new_event(tag, sg_event_id=DROP, mp_test_marker=tag)
    r = mp.post_webhook([bad])
    assert r.status_code == 200 and r.json()["dead_lettered"] == 1, r.text
    dl = wait_dead(mp, tag)[0]
    assert dl["topic"] == DLQ_TOPIC and "sg_event_id" in dl["error"], dl

    out = dlq(mp, "replay", "--dry-run", str(dl["id"])).stdout
    assert "%s -> %s" % (DLQ_TOPIC, EVENTS_TOPIC) in out, out
    dlq(mp, "replay", str(dl["id"]))
    rows = wait_dead(mp, tag, 2)
    assert rows[1]["topic"] == EVENTS_TOPIC and "sg_event_id" in rows[1]["error"], rows
    assert rows[0]["replayed_at"] is not None and rows[1]["replayed_at"] is None, rows
    recs = mp.kafka_records(tag, [EVENTS_TOPIC])
    assert len(recs) == 1 and recs[0]["headers"]["mailpipe_replay_of"] == str(dl["id"]), recs
    assert bytes(rows[1]["payload"]) == bytes(rows[0]["payload"])


def test_list_filters_and_show(mp, tag):
    mp.wait_sink_idle()  # earlier tests' dead letters are in before t0
    t0 = start_time(mp)
    bads = [new_event(tag, sg_event_id=DROP, mp_test_marker="%s-%d" % (tag, i))
            for i in range(3)]
    bads.append(new_event(tag, event=DROP, mp_test_marker="%s-3" % tag))
    assert mp.post_webhook(bads).json()["dead_lettered"] == 4
    wait_dead(mp, tag, 4)
    ids = [x["id"] for x in dead_rows(mp, tag)]
    since = ("--since", iso(t0))

    out = dlq(mp, "list", "--topic", DLQ_TOPIC, *since).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "TOPIC", "POSITION", "CREATED", "REPLAYED", "ERROR"], out
    assert listed_ids(out) == ids and list_count(out) == 4, out
    # aligned: every column starts where its heading does
    col = lines[0].index("TOPIC")
    assert all(line[col:].startswith(DLQ_TOPIC) for line in lines[1:5]), out
    mine = ("--topic", DLQ_TOPIC) + since
    assert listed_ids(dlq(mp, "list", "--reason", "'EVENT'", *mine).stdout) == ids[3:]
    assert listed_ids(dlq(mp, "list", "--reason", "sg_event_id", *mine).stdout) == ids[:3]
    out = dlq(mp, "list", "--topic", DLQ_TOPIC, "--limit", "2", *since).stdout
    assert listed_ids(out) == ids[:2] and "2 of 4 dead letters" in out, out
    assert list_count(dlq(mp, "list", "--since", "2099-01-01T00:00:00Z").stdout) == 0
    assert list_count(dlq(mp, "list", "--topic", "no.such.topic").stdout) == 0
    out = dlq(mp, "list", "--until", iso(t0), "--topic", DLQ_TOPIC, "--limit", "0").stdout
    assert not set(ids) & set(listed_ids(out)), out
    assert set(ids) <= set(listed_ids(dlq(mp, "list", "--since", "10m", "--limit", "0").stdout))

    shown = dlq(mp, "show", str(ids[0])).stdout
    assert re.search(r"^topic +%s$" % re.escape(DLQ_TOPIC), shown, re.M), shown
    assert re.search(r"^replayed +-$", shown, re.M), shown
    assert '  "mp_test_marker": "%s-0"' % tag in shown, shown
    p = dlq(mp, "show", "999999999", check=False)
    assert p.returncode == 1 and "no dead letter 999999999" in p.stderr, p


PENDING_RE = re.compile(r'^mailpipe_dead_letters_(pending|oldest_pending_age_seconds)'
                        r'\{(?:[^}]*,)?topic="([^"]*)"[^}]*\} (\S+)$', re.M)


def pending_gauges(mp, topic):
    """(pending, oldest age) of topic's dead letters, from GET /metrics."""
    r = mp.request("GET", "/metrics", headers={"Authorization": "Bearer " + mp.api_key})
    assert r.status_code == 200, r.text[:300]
    got = {name: float(v) for name, t, v in PENDING_RE.findall(r.text) if t == topic}
    return got["pending"], got["oldest_pending_age_seconds"]


def test_discard(mp, tag):
    mp.wait_sink_idle()  # earlier tests' dead letters are in before t0
    t0 = start_time(mp)
    bads = [new_event(tag, sg_event_id=DROP, mp_test_marker="%s-%d" % (tag, i))
            for i in range(3)]
    assert mp.post_webhook(bads).json()["dead_lettered"] == 3
    wait_dead(mp, tag, 3)
    pending0, age0 = pending_gauges(mp, DLQ_TOPIC)
    assert pending0 >= 3 and age0 > 0, (pending0, age0)
    ids = [x["id"] for x in dead_rows(mp, tag)]
    pending = ("list", "--pending", "--topic", DLQ_TOPIC, "--since", iso(t0))

    out = dlq(mp, "discard", "--dry-run", str(ids[0])).stdout
    assert "would discard 1 dead letter" in out, out
    assert dead_rows(mp, tag)[0]["discarded_at"] is None
    out = dlq(mp, "discard", str(ids[0])).stdout
    assert "discarded 1 dead letter" in out, out
    assert dead_rows(mp, tag)[0]["discarded_at"] is not None
    assert listed_ids(dlq(mp, *pending).stdout) == ids[1:]
    assert "discarded" in dlq(mp, "list", "--since", iso(t0)).stdout

    # a discarded one is not replayed, and nothing of the command is
    p = dlq(mp, "replay", str(ids[1]), str(ids[0]), check=False)
    assert p.returncode == 1 and "was discarded" in p.stderr, p
    assert all(x["replayed_at"] is None for x in dead_rows(mp, tag))
    p = dlq(mp, "discard", str(ids[0]), check=False)
    assert "already discarded" in p.stderr and "discarded 0 dead letters" in p.stdout, p

    # by filters: the pending ones only
    out = dlq(mp, "discard", "--dry-run", "--since", iso(t0), "--reason", "sg_event_id").stdout
    assert "would discard 2 dead letters" in out, out
    out = dlq(mp, "discard", "--since", iso(t0), "--reason", "sg_event_id").stdout
    assert "discarded 2 dead letters" in out, out
    assert listed_ids(dlq(mp, *pending).stdout) == []
    assert len(dead_rows(mp, tag)) == 3, "discard deleted rows"
    assert pending_gauges(mp, DLQ_TOPIC)[0] == pending0 - 3, "/metrics counts pending rows"
    out = dlq(mp, "replay", "--since", iso(t0)).stdout
    assert "replayed 0 dead letters" in out, out


@pytest.mark.parametrize("args, says", [
    (("list", "--since", "yesterday"), "invalid '--since' 'yesterday'"),
    (("list", "--until", "2026-13-01"), "invalid '--until'"),
    (("list", "--since", "1h", "--until", "2h"), "is not before"),
    (("list", "--limit", "-1"), "invalid '--limit' '-1'"),
    (("list", "--topic"), "option '--topic' needs a value"),
    (("list", "--dry-run"), "'--dry-run' is not one of its options"),
    (("list", "7"), "unexpected argument '7'"),
    (("show",), "expected one ID"),
    (("show", "abc"), "invalid id 'abc'"),
    (("show", "--topic", "x", "1"), "'--topic' is not one of its options"),
    (("replay",), "give IDs, filters or --all"),
    (("replay", "1", "--topic", "x"), "not both"),
    (("replay", "--all", "--topic", "x"), "'--all' takes no filters"),
    (("replay", "0"), "invalid id '0'"),
    (("discard",), "give IDs, filters or --all"),
    (("discard", "--frobnicate"), "unknown option '--frobnicate'"),
    (("purge",), "unknown subcommand 'purge'"),
])
def test_bad_options_exit_2(mp, args, says):
    p = dlq(mp, *args, check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert says in p.stderr, p.stderr
    assert p.stdout == "", p.stdout
