"""`mailpipectl replay`: rebuild PostgreSQL from sendgrid.events.

Over data already stored it must only find duplicates (the tables unchanged, to the row);
rows deleted by hand come back exactly as they were; the range is chosen by offsets or
times and ends at the end offsets seen at start; the counts it prints are exact, checked
against a scan of the topic.
"""

import datetime
import re
import time
import uuid

import pytest

from helpers.mailpipe import EVENTS_TOPIC, encode, new_event, wait_until

FINAL_RE = re.compile(r"^replayed (\d+) records: (\d+) written, (\d+) duplicates, "
                      r"(\d+) dead letters$", re.M)
EVENT_COLS = ("sg_event_id, event, email, event_time, sg_message_id, message_id, category,"
              " reason, status, type, url, raw, received_at, kafka_partition, kafka_offset")


def replay(mp, *args, check=True):
    p = mp.mailpipectl("replay", *args, check=check, timeout=120)
    if not check:
        return p
    m = FINAL_RE.search(p.stdout)
    assert m, "no final count line in %r (stderr %r)" % (p.stdout, p.stderr)
    return tuple(int(x) for x in m.groups()), p


def iso_ms(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def topic_records(mp):
    """Every record of the events topic: [(partition, offset, timestamp ms)]."""
    return [(r["partition"], r["offset"], r["timestamp"])
            for r in mp.kafka_records(None, [EVENTS_TOPIC])]


def snapshot(mp):
    """What a replay over stored data must leave exactly as it was."""
    q = mp.query
    return {
        "events": q("select count(*), md5(string_agg(sg_event_id || kafka_partition || '/'"
                    " || kafka_offset, ',' order by sg_event_id)) from events")[0],
        "event_ids": q("select count(*) from event_ids")[0][0],
        "dead_letters": q("select count(*), max(id) from dead_letters")[0],
        "stats_daily": q("select md5(string_agg(d::text, ',' order by day, category))"
                         " from stats_daily d")[0][0],
        "stats_minute": q("select md5(string_agg(m::text, ',' order by minute, event))"
                          " from stats_minute m")[0][0],
        "messages": q("select md5(string_agg(message_id || status, ',' order by message_id))"
                      " from messages")[0][0],
        "suppressions": q("select count(*) from suppressions")[0][0],
    }


def rows_of(mp, ids):
    return sorted(mp.query("select %s from events where sg_event_id = any(%%s)" % EVENT_COLS,
                           list(ids)))


def forget(mp, ids):
    """Deletes events rows and their guard rows: what a lost table looks like."""
    mp.query("delete from events where sg_event_id = any(%s)", list(ids))
    mp.query("delete from event_ids where sg_event_id = any(%s)", list(ids))


def settle(mp):
    mp.wait_sender_idle()
    mp.wait_sim_quiet()
    mp.wait_sink_idle()


def post(mp, events, poison=None):
    body = encode(events + ([poison] if poison else [])).replace(b'"@TINY@"', b"1e-20000")
    r = mp.post_webhook(body)
    assert r.status_code == 200, r.text


def sink_dead_count(mp, recs):
    """The sink's dead letters among recs that a replay finds dead again: all but those
    whose event was stored since (`dlq replay` after a fix, test_dlq.py)."""
    have = {(p, o) for p, o, _ in recs}
    rows = [(bytes(pl), (p, o)) for p, o, pl in mp.query(
        "select kafka_partition, kafka_offset, payload from dead_letters where topic = %s",
        EVENTS_TOPIC) if (p, o) in have]
    ids = {}
    for payload, pos in rows:
        m = re.search(rb'"sg_event_id"\s*:\s*"([^"\\]*)"', payload)
        ids[pos] = m.group(1).decode("utf-8", "replace") if m else None
    stored = {r[0] for r in mp.query("select sg_event_id from event_ids"
                                     " where sg_event_id = any(%s)",
                                     [i for i in ids.values() if i])}
    return sum(1 for i in ids.values() if i not in stored)


def test_replay_from_earliest_finds_only_duplicates_then_restores_what_was_lost(mp, tag):
    events = [new_event(tag) for _ in range(20)]
    # 1e-20000: JSON the sink takes, a number jsonb refuses: the sink dead-letters it
    poison = new_event(tag, tiny="@TINY@")
    post(mp, events, poison)
    mp.wait_rows(tag, 20)
    settle(mp)
    wait_until(lambda: mp.dead_letters(poison["sg_event_id"]), 30, desc="the poison event")
    before = snapshot(mp)
    recs = topic_records(mp)
    dead = sink_dead_count(mp, recs)
    assert dead >= 1

    (read, written, dups, x), p = replay(mp, "--from", "earliest")
    assert (read, written, dups, x) == (len(recs), 0, len(recs) - dead, dead), p.stdout
    assert snapshot(mp) == before, "a replay over stored data changed the tables"
    assert re.search(r"^replay: .*p\d+ \d+/\d+ read=\d+ written=0 duplicates=\d+", p.stderr,
                     re.M), p.stderr

    # lose three rows (and their guard), replay: exactly those come back, as they were
    lost = [e["sg_event_id"] for e in events[:3]]
    kept = rows_of(mp, lost)
    assert len(kept) == 3
    forget(mp, lost)
    assert mp.count_events(tag) == (17, 17)
    (read, written, dups, x), _ = replay(mp, "--from", "earliest")
    assert (read, written, dups, x) == (len(recs), 3, len(recs) - dead - 3, dead)
    assert rows_of(mp, lost) == kept
    assert mp.count_events(tag) == (20, 20)
    after = snapshot(mp)
    for k in ("events", "event_ids", "dead_letters", "messages", "suppressions"):
        assert after[k] == before[k], k

    # and once more: nothing
    (read, written, dups, x), _ = replay(mp, "--from", "earliest", "--to", "latest")
    assert (read, written) == (len(recs), 0)


def test_replay_by_offsets_and_by_time(mp, tag):
    settle(mp)
    first = [new_event(tag) for _ in range(8)]
    post(mp, first)
    mp.wait_rows(tag, 8)
    time.sleep(1.2)
    second = [new_event(tag) for _ in range(8)]
    post(mp, second)
    mp.wait_rows(tag, 16)
    settle(mp)
    recs = topic_records(mp)
    coords = {}
    for e in first + second:
        (t, part, off), = mp.kafka_find(e["sg_event_id"], (EVENTS_TOPIC,))
        coords[e["sg_event_id"]] = (part, off)
    ts = {(part, off): t for part, off, t in recs}
    # a time between the two posts: after every record of the first
    mid_ms = max(ts[coords[e["sg_event_id"]]] for e in first) + 1
    assert mid_ms <= min(ts[coords[e["sg_event_id"]]] for e in second)
    newer = sum(1 for _, _, t in recs if t >= mid_ms)
    assert newer >= 8

    # by time: the records at or after it, one lost row restored
    lost = second[0]["sg_event_id"]
    kept = rows_of(mp, [lost])
    forget(mp, [lost])
    (read, written, dups, x), _ = replay(mp, "--from", iso_ms(mid_ms))
    assert (read, written, dups, x) == (newer, 1, newer - 1, 0)
    assert rows_of(mp, [lost]) == kept

    # up to a time: the records before it
    (read, written, _, _), _ = replay(mp, "--from", "earliest", "--to", iso_ms(mid_ms))
    assert (read, written) == (len(recs) - newer, 0)

    # by offsets: from one record of one partition to its end, as a named group
    lost = second[1]["sg_event_id"]
    part, off = coords[lost]
    high = max(o for p, o, _ in recs if p == part) + 1
    kept = rows_of(mp, [lost])
    forget(mp, [lost])
    group = "mailpipe-test-replay-" + uuid.uuid4().hex[:8]
    (read, written, dups, x), p = replay(mp, "--from", "%d:%d" % (part, off), "--group", group)
    assert (read, written, dups, x) == (high - off, 1, high - off - 1, 0), p.stdout
    assert rows_of(mp, [lost]) == kept
    assert "as group %s" % group in p.stderr, p.stderr
    from confluent_kafka import TopicPartition
    c = mp._consumer(group)
    try:
        committed = c.committed([TopicPartition(EVENTS_TOPIC, part)], timeout=10)
        assert committed[0].offset == high, committed
    finally:
        c.close()


@pytest.mark.parametrize("args, says", [
    ((), "'--from' is required"),
    (("--from", "yesterday"), "invalid '--from' 'yesterday'"),
    (("--from", "0:1,0:2"), "invalid '--from' '0:1,0:2'"),
    (("--from", "0:"), "invalid '--from' '0:'"),
    (("--from", "1h", "--to", "2h"), "is not before"),
    (("--from", "earliest", "--to", "soon"), "invalid '--to' 'soon'"),
    (("--from", "earliest", "--group", ""), "invalid '--group'"),
    (("--from", "earliest", "--frobnicate"), "unknown option '--frobnicate'"),
    (("--from", "earliest", "extra"), "unexpected argument 'extra'"),
    (("--from",), "option '--from' needs a value"),
])
def test_bad_options_exit_2(mp, args, says):
    p = replay(mp, *args, check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert says in p.stderr, p.stderr
    assert p.stdout == ""


def test_a_partition_that_does_not_exist_fails_before_reading(mp):
    before = snapshot(mp)
    p = replay(mp, "--from", "99:0", check=False)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "has no partition 99" in p.stderr, p.stderr
    assert snapshot(mp) == before
