"""Volume and duplicates: 10,000 events in signed batches of 100, posted
twice, are stored exactly once; so are duplicates inside a batch and
replays after the Redis fast path forgot everything.
"""

import concurrent.futures
import time

import redis

from helpers.mailpipe import assert_accepted, encode

N_EVENTS = 10_000
BATCH = 100
THREADS = 8


def post_all(mp, bodies, threads=THREADS):
    """Post every (body, ts) pair concurrently; return the status codes."""
    def one(item):
        body, ts = item
        r = mp.post_webhook(body, ts=ts, timeout=60)
        return r.status_code, r.text[:200]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, bodies))


def assert_all_200(results):
    bad = [r for r in results if r[0] != 200]
    assert not bad, "%d of %d posts failed, e.g. %r" % (len(bad), len(results), bad[:3])


def test_ten_thousand_events_twice_stored_once(mp, tag, make_event):
    ts = str(int(time.time()))
    events = [make_event(event=("delivered", "open", "click", "processed")[i % 4],
                         email="user%05d@example.com" % i)
              for i in range(N_EVENTS)]
    bodies = [(encode(events[i:i + BATCH]), ts) for i in range(0, N_EVENTS, BATCH)]
    assert len(bodies) == N_EVENTS // BATCH

    t0 = time.monotonic()
    assert_all_200(post_all(mp, bodies))
    mp.wait_rows(tag, N_EVENTS, timeout=120)
    elapsed = time.monotonic() - t0
    mp.wait_sink_idle()
    assert tuple(mp.count_events(tag)) == (N_EVENTS, N_EVENTS)
    print("10,000 events posted and stored in %.1fs" % elapsed)

    # SendGrid retries and duplicates: the very same POSTs again
    assert_all_200(post_all(mp, bodies))
    mp.wait_sink_idle()
    assert tuple(mp.count_events(tag)) == (N_EVENTS, N_EVENTS)

    # the Redis markers are only a fast path: without them the database
    # guard still refuses the duplicates
    redis.Redis.from_url(mp.vars["REDIS_URL"]).flushall()
    assert_all_200(post_all(mp, bodies[:20]))
    mp.wait_sink_idle()
    assert tuple(mp.count_events(tag)) == (N_EVENTS, N_EVENTS)
    assert mp.query("select count(*) from event_ids where starts_with(sg_event_id, %s)",
                    tag + "-")[0][0] == N_EVENTS


def test_same_event_twice_in_a_batch_is_stored_once(mp, tag, make_event):
    a, b = make_event(), make_event(event="open")
    assert_accepted(mp.post_webhook([a, b, a, a]), 4)
    mp.wait_rows(tag, 2)
    mp.wait_sink_idle()
    rows = mp.event_rows(tag)
    assert {k: len(v) for k, v in rows.items()} == {a["sg_event_id"]: 1, b["sg_event_id"]: 1}


def test_same_event_in_concurrent_posts_is_stored_once(mp, tag, make_event):
    evs = [make_event() for _ in range(50)]
    body = encode(evs)
    ts = str(int(time.time()))
    assert_all_200(post_all(mp, [(body, ts)] * 16))
    mp.wait_rows(tag, 50)
    mp.wait_sink_idle()
    assert tuple(mp.count_events(tag)) == (50, 50)


def test_one_mebibyte_batch_is_accepted(mp, tag, make_event):
    # SendGrid flushes at 768 KB; accept at least 1 MiB
    evs, body = [], b"[]"
    while len(body) < 1024 * 1024:
        evs.extend(make_event(useragent="Mozilla/5.0 " + "x" * 400) for _ in range(100))
        body = encode(evs)
    assert_accepted(mp.post_webhook(body, timeout=60), len(evs))
    mp.wait_rows(tag, len(evs), timeout=60)
    mp.wait_sink_idle()
    assert tuple(mp.count_events(tag)) == (len(evs), len(evs))
