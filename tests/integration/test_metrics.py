"""GET /metrics: the Prometheus scrape of every mailpipe process through the
query app (https, Bearer key with scope metrics.read).

The stack pushes metrics every second (STACK_ENV MAILPIPE_METRICS_PUSH_SECONDS),
so a snapshot is stale after 3 s. Counters are summed over the fresh instances
of a process and compared with >=: the simulator and other tests may add to
them, never take away.
"""
import os
import re
import shutil
import signal
import subprocess
import time

from helpers.mailpipe import (EVENTS_TOPIC, REDIS_PREFIX, SINK_GROUP, SENT_OR_BEYOND,
                              WEBHOOK_PATH, assert_accepted, encode, mail_body, new_event,
                              wait_until)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROCESSES = ("ingest", "sink", "sender", "query")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse(text):
    """[(name, {label: value}, float)] of the exposition's sample lines."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        labels = {}
        if m.group(2):
            pos = 0
            for lm in LABEL_RE.finditer(m.group(2)):
                assert lm.start() == pos, "bad labels in %r" % line
                labels[lm.group(1)] = unescape(lm.group(2))
                pos = lm.end()
            assert pos == len(m.group(2)), "bad labels in %r" % line
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def scrape(mp, key=None):
    r = mp.request("GET", "/metrics",
                   headers={"Authorization": "Bearer " + (key or mp.api_key)})
    assert r.status_code == 200, "GET /metrics: %d %r" % (r.status_code, r.text[:300])
    return r


def samples(mp):
    return parse(scrape(mp).text)


def fresh_instances(ss, process):
    return {l["instance"] for n, l, v in ss
            if n == "mailpipe_up" and l.get("process") == process and v == 1}


def total(ss, name, process, **want):
    """Sum of name's samples of the fresh instances of process whose labels
    include want."""
    fresh = fresh_instances(ss, process)
    return sum(v for n, l, v in ss
               if n == name and l.get("process") == process and l.get("instance") in fresh
               and all(l.get(k) == w for k, w in want.items()))


def wait_metric(mp, name, process, at_least, timeout=30, **want):
    def ok():
        have = total(samples(mp), name, process, **want)
        if have < at_least:
            raise AssertionError("%s%r of %s is %s" % (name, want, process, have))
        return have
    return wait_until(ok, timeout, interval=0.3,
                      desc="%s%r of %s >= %s" % (name, want, process, at_least))


def wait_all_up(mp, timeout=30):
    def ok():
        ss = samples(mp)
        missing = [p for p in PROCESSES if not fresh_instances(ss, p)]
        if missing:
            raise AssertionError("not up: %s" % missing)
        return ss
    return wait_until(ok, timeout, interval=0.3, desc="mailpipe_up 1 for %s" % (PROCESSES,))


def test_metrics_needs_a_key_with_metrics_read(mp):
    r = mp.request("GET", "/metrics")
    assert r.status_code == 401, (r.status_code, r.text[:300])
    key, _ = mp.create_api_key("metrics-no-scope", "stats.read")

    def loaded(key):
        def ok():
            r = mp.request("GET", "/metrics", headers={"Authorization": "Bearer " + key})
            return [r] if r.status_code != 401 else None   # a 4xx Response is falsy
        return wait_until(ok, 20, interval=0.3, desc="query to load a new key")[0]
    r = loaded(key)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert "metrics.read" in r.json()["errors"][0]["message"]

    key, _ = mp.create_api_key("metrics-reader", "metrics.read")
    r = loaded(key)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == CONTENT_TYPE
    assert "# TYPE mailpipe_up gauge" in r.text


def test_every_process_is_up_and_promtool_accepts_the_text(mp, tag):
    # some traffic first, so that every family has samples
    assert_accepted(mp.post_webhook([new_event(tag)]), 1)
    mp.wait_sink_idle()
    wait_all_up(mp)
    text = scrape(mp).text
    if os.environ.get("MAILPIPE_METRICS_DUMP"):   # a copy of the scrape, to read
        with open(os.environ["MAILPIPE_METRICS_DUMP"], "w", encoding="utf-8") as f:
            f.write(text)
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed (ops/install-deps installs prometheus)"
    p = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, "promtool check metrics: %s\n--- text ---\n%s" % (
        p.stdout, text[:3000])
    ss = parse(text)
    names = {n for n, _, _ in ss}
    for n in ("mailpipe_process_start_time_seconds", "mailpipe_process_resident_memory_bytes"):
        for p_ in PROCESSES:
            assert total(ss, n, p_) > 0, "%s of %s" % (n, p_)
    assert "mailpipe_metrics_store_up" in names
    assert total(ss, "mailpipe_metrics_store_up", "query") == 1
    for _, labels, _ in ss:
        assert labels.get("process") in PROCESSES and labels.get("instance"), labels


def test_counters_move_with_a_webhook_batch(mp, tag):
    n = 7
    events = [new_event(tag) for _ in range(n)]
    body = encode(events)
    ss = wait_all_up(mp)
    route = {"route": WEBHOOK_PATH, "method": "POST", "status": "200"}
    before = {
        "received": total(ss, "mailpipe_events_received_total", "ingest"),
        "produced": total(ss, "mailpipe_events_produced_total", "ingest", topic=EVENTS_TOPIC),
        "http": total(ss, "mailpipe_http_requests_total", "ingest", **route),
        "rows": total(ss, "mailpipe_sink_rows_written_total", "sink", event="delivered"),
        "latency": total(ss, "mailpipe_webhook_to_row_seconds_count", "sink"),
        "batches": total(ss, "mailpipe_sink_batches_total", "sink", outcome="committed"),
    }
    assert_accepted(mp.post_webhook(body), n)
    mp.wait_rows(tag, n)
    mp.wait_sink_idle()
    wait_metric(mp, "mailpipe_events_received_total", "ingest", before["received"] + n)
    wait_metric(mp, "mailpipe_events_produced_total", "ingest", before["produced"] + n,
                topic=EVENTS_TOPIC)
    wait_metric(mp, "mailpipe_http_requests_total", "ingest", before["http"] + 1, **route)
    wait_metric(mp, "mailpipe_sink_rows_written_total", "sink", before["rows"] + n,
                event="delivered")
    wait_metric(mp, "mailpipe_webhook_to_row_seconds_count", "sink", before["latency"] + n)
    wait_metric(mp, "mailpipe_sink_batches_total", "sink", before["batches"] + 1,
                outcome="committed")

    # the same batch again: every event is a duplicate, no row is written
    ss = samples(mp)
    dups = total(ss, "mailpipe_sink_duplicates_total", "sink")
    rows = total(ss, "mailpipe_sink_rows_written_total", "sink", event="delivered")
    assert_accepted(mp.post_webhook(body), n)
    mp.wait_sink_idle()
    wait_metric(mp, "mailpipe_sink_duplicates_total", "sink", dups + n)
    assert mp.count_events(tag)[0] == n

    # the histogram is cumulative and ends in +Inf == _count
    ss = samples(mp)
    for inst in fresh_instances(ss, "sink"):
        buckets = sorted((float(l["le"]), v) for n_, l, v in ss
                         if n_ == "mailpipe_webhook_to_row_seconds_bucket"
                         and l["instance"] == inst)
        count = [v for n_, l, v in ss
                 if n_ == "mailpipe_webhook_to_row_seconds_count" and l["instance"] == inst]
        assert buckets and buckets[-1][0] == float("inf") and [buckets[-1][1]] == count
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    # rows written did not move on the replay (other traffic aside, none of ours)
    assert total(ss, "mailpipe_sink_rows_written_total", "sink", event="delivered") >= rows


def test_query_counts_its_own_requests(mp):
    route = {"route": "/metrics", "method": "GET", "status": "200"}
    before = total(samples(mp), "mailpipe_http_requests_total", "query", **route)
    wait_metric(mp, "mailpipe_http_requests_total", "query", before + 1, **route)
    ss = samples(mp)
    assert total(ss, "mailpipe_http_request_duration_seconds_count", "query",
                 route="/metrics") >= 1


def test_sender_attempts_count_a_sent_mail(mp):
    ss = wait_all_up(mp)
    before = total(ss, "mailpipe_sender_attempts_total", "sender", outcome="sent")
    mid = mp.send_ok(mail_body())
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=30)
    wait_metric(mp, "mailpipe_sender_attempts_total", "sender", before + 1, outcome="sent")
    ss = samples(mp)
    assert any(n == "mailpipe_sender_retry_queue_depth" and l["process"] == "sender"
               for n, l, _ in ss)


def test_consumer_lag_per_partition(mp, tag):
    assert_accepted(mp.post_webhook([new_event(tag)]), 1)
    mp.wait_sink_idle()
    partitions = set(mp.sink_lag())

    def ok():
        ss = samples(mp)
        fresh = fresh_instances(ss, "sink")
        have = {int(l["partition"]) for n, l, v in ss
                if n == "mailpipe_consumer_lag" and l["process"] == "sink"
                and l["instance"] in fresh and l["group"] == SINK_GROUP
                and l["topic"] == EVENTS_TOPIC and v >= 0}
        if have != partitions:
            raise AssertionError("lag of partitions %s, want %s" % (sorted(have),
                                                                    sorted(partitions)))
        return ss
    wait_until(ok, 30, interval=0.5, desc="mailpipe_consumer_lag for every partition")


def count_in_logs(mp, needle):
    """{log file name: lines holding needle} of the mailpipe services."""
    out = {}
    for svc in PROCESSES:
        path = os.path.join(mp.run_dir, "logs", svc + ".log")
        with open(path, encoding="utf-8", errors="replace") as f:
            out[svc] = sum(1 for line in f if needle in line)
    return out


def test_redis_down_scrape_goes_on_and_logs_once(mp):
    wait_all_up(mp)
    before = count_in_logs(mp, "redis unavailable")
    stopped = False
    try:
        mp.stack("stop", "redis", timeout=60)
        stopped = True

        def only_query():
            ss = samples(mp)
            up = {l["process"] for n, l, v in ss if n == "mailpipe_up"}
            if up != {"query"}:
                raise AssertionError("up: %s" % up)
            return ss
        ss = wait_until(only_query, 20, interval=0.5, desc="a scrape without Redis")
        assert total(ss, "mailpipe_metrics_store_up", "query") == 0
        time.sleep(5)   # five pushes, each failing
        after = count_in_logs(mp, "redis unavailable")
        # one line per Redis connection and outage, not one per push
        flood = {k: after[k] - before[k] for k in after if after[k] - before[k] > 3}
        assert not flood, "redis outage logged over and over: %r" % flood
        mp.stack("start", "redis", timeout=60)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "redis", timeout=60, check=False)
    ss = wait_all_up(mp)
    assert total(ss, "mailpipe_metrics_store_up", "query") == 1


def test_clean_stop_deletes_its_snapshot(mp):
    ss = wait_all_up(mp)
    pid = mp.wait_pid("sender")
    inst = [i for i in fresh_instances(ss, "sender") if i.endswith(":%d" % pid)]
    assert inst, "no fresh sender instance for pid %d" % pid
    field = "sender@" + inst[0]
    r = mp.redis()
    assert r.hexists(REDIS_PREFIX + "metrics", field)
    mp.stack("stop", "sender")
    try:
        assert not r.hexists(REDIS_PREFIX + "metrics", field), "field kept after SIGTERM"
        ss = samples(mp)
        assert not [l for _, l, _ in ss if l.get("instance") == inst[0]], \
            "a cleanly stopped process is gone from the scrape"
    finally:
        mp.stack("start", "sender")
    mp.wait_pid("sender", not_pid=pid)


def test_killed_sink_goes_stale(mp):
    ss = wait_all_up(mp)
    old = mp.wait_pid("sink")
    old_inst = [i for i in fresh_instances(ss, "sink") if i.endswith(":%d" % old)]
    assert old_inst, "no fresh sink instance for pid %d in %s" % (
        old, fresh_instances(ss, "sink"))
    os.kill(old, signal.SIGKILL)
    new = mp.wait_pid("sink", not_pid=old, timeout=30)

    def ok():
        ss = samples(mp)
        up = {l["instance"]: v for n, l, v in ss
              if n == "mailpipe_up" and l["process"] == "sink"}
        if up.get(old_inst[0]) != 0:
            raise AssertionError("old sink: mailpipe_up %r" % up.get(old_inst[0]))
        if not any(i.endswith(":%d" % new) and v == 1 for i, v in up.items()):
            raise AssertionError("new sink %d not up: %r" % (new, up))
        return ss
    ss = wait_until(ok, 30, interval=0.5, desc="killed sink stale, new sink up")
    others = [(n, l) for n, l, _ in ss
              if l.get("instance") == old_inst[0] and n != "mailpipe_up"]
    assert not others, "a stale instance shows only mailpipe_up: %r" % others[:3]
