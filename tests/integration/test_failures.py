"""Failure injection against the real stack: the sink killed mid-stream,
Kafka down or failing produce requests, PostgreSQL stopped, ingest killed,
Redis stopped. Nothing accepted is lost or duplicated.

Each test restores the stack in `finally` so the next one starts healthy.
"""

import concurrent.futures
import os
import signal
import time

from helpers.mailpipe import (INGEST_DEADLINE_S, assert_accepted,
                              assert_json_error, encode, pid_alive, wait_until)


def assert_exactly(mp, tag, n, timeout=60):
    mp.wait_rows(tag, n, timeout)
    mp.wait_sink_idle(timeout)
    assert tuple(mp.count_events(tag)) == (n, n), "rows, distinct ids"


def test_sink_killed_mid_stream_loses_and_duplicates_nothing(mp, tag, make_event):
    total, batch = 3000, 50
    events = [make_event() for _ in range(total)]
    bodies = [encode(events[i:i + batch]) for i in range(0, total, batch)]
    old_pid = mp.wait_pid("sink")

    def post_many(some):
        def post(body):
            r = mp.post_webhook(body, timeout=30)
            return r.status_code, r.text[:200]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(post, some))
        bad = [r for r in results if r[0] != 200]
        assert not bad, "%d posts failed, e.g. %r" % (len(bad), bad[:3])

    # a third, then kill -9 once the sink is visibly writing them, then the rest
    third = len(bodies) // 3
    post_many(bodies[:third])
    wait_until(lambda: mp.count_events(tag)[0] > 0, 30, desc="first rows before the kill")
    os.kill(old_pid, signal.SIGKILL)
    print("sink %d killed with %d of %d rows written"
          % (old_pid, mp.count_events(tag)[0], third * batch))
    post_many(bodies[third:])

    new_pid = mp.wait_pid("sink", not_pid=old_pid, timeout=30)
    assert new_pid != old_pid
    assert_exactly(mp, tag, total, timeout=90)


def test_kafka_down_is_503_then_the_retry_is_stored_once(mp, tag, make_event, kafka_ctl):
    events = [make_event() for _ in range(20)]
    body = encode(events)
    ts = str(int(time.time()))
    try:
        assert kafka_ctl("down").startswith("ok")
        t0 = time.monotonic()
        r = mp.post_webhook(body, ts=ts, timeout=INGEST_DEADLINE_S + 10)
        elapsed = time.monotonic() - t0
        assert_json_error(r, 503)
        assert elapsed <= INGEST_DEADLINE_S + 2, "503 took %.1fs" % elapsed
    finally:
        restored = kafka_ctl("clear")
    assert restored.startswith("ok"), restored

    # SendGrid retries the very same signed POST
    def retried():
        resp = mp.post_webhook(body, ts=ts, timeout=INGEST_DEADLINE_S + 10)
        if resp.status_code != 200:
            raise AssertionError("retry answered %d: %s" % (resp.status_code, resp.text[:200]))
        return resp
    assert_accepted(wait_until(retried, 30, interval=1, desc="200 for the retried POST"), 20)
    assert_exactly(mp, tag, 20)


def test_postgres_stopped_then_started_loses_and_duplicates_nothing(mp, tag, make_event):
    total, batch = 500, 50
    events = [make_event() for _ in range(total)]
    stopped = False
    try:
        mp.stack("stop", "postgres", timeout=60)
        stopped = True
        # ingest needs no database: every POST is still acknowledged
        for i in range(0, total, batch):
            assert_accepted(mp.post_webhook(encode(events[i:i + batch])), batch)
        sink_before = mp.pid_of("sink")
        time.sleep(5)   # the scenario: the sink meets a dead database for a while
        # the sink is alive (the same process, or restarted by the supervisor)
        sink = wait_until(lambda: pid_alive(mp.pid_of("sink")) and mp.pid_of("sink"), 15,
                          desc="a live sink while postgres is down")
        print("sink pid before %s, after %s" % (sink_before, sink))
        mp.stack("start", "postgres", timeout=120)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "postgres", timeout=120, check=False)
    assert_exactly(mp, tag, total, timeout=60)


def test_retriable_produce_errors_are_retried_not_lost(mp, tag, make_event, kafka_ctl):
    events = [make_event() for _ in range(30)]
    try:
        assert kafka_ctl("produce-errors 5").startswith("ok")
        # librdkafka retries retriable errors inside the deadline: still 200
        assert_accepted(mp.post_webhook(encode(events), timeout=INGEST_DEADLINE_S + 10), 30)
    finally:
        restored = kafka_ctl("clear")
    assert restored.startswith("ok"), restored
    assert_exactly(mp, tag, 30)


def test_ingest_killed_answers_503_not_502_then_recovers(mp, tag, make_event):
    events = [make_event() for _ in range(10)]
    body = encode(events)
    ts = str(int(time.time()))
    old = mp.wait_pid("ingest")
    os.kill(old, signal.SIGKILL)
    statuses = []

    def accepted():
        resp = mp.post_webhook(body, ts=ts, timeout=INGEST_DEADLINE_S + 10)
        statuses.append(resp.status_code)
        if resp.status_code != 200:
            # ingest down: a JSON 503 makes SendGrid retry, a 502 page does not say so
            assert_json_error(resp, 503)
            return None
        return resp
    assert_accepted(wait_until(accepted, 30, interval=0.05, desc="200 after ingest restart"), 10)
    assert mp.wait_pid("ingest", not_pid=old) != old
    print("statuses while ingest restarted: %s" % statuses)
    assert_exactly(mp, tag, 10)


def test_redis_down_does_not_stop_the_pipeline(mp, tag, make_event):
    # Redis is only the sink's fast path and is not needed by webhook ingest:
    # the database's guard alone must keep writing exactly once
    total, batch = 200, 50
    events = [make_event() for _ in range(total)]
    stopped = False
    try:
        mp.stack("stop", "redis", timeout=60)
        stopped = True
        for i in range(0, total, batch):
            assert_accepted(mp.post_webhook(encode(events[i:i + batch])), batch)
        mp.wait_rows(tag, total, timeout=30)
        # and again: duplicates are refused without the markers
        for i in range(0, total, batch):
            assert_accepted(mp.post_webhook(encode(events[i:i + batch])), batch)
        mp.wait_sink_idle(30)
        assert tuple(mp.count_events(tag)) == (total, total)
        mp.stack("start", "redis", timeout=60)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "redis", timeout=60, check=False)
    assert_exactly(mp, tag, total)
