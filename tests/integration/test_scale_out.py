"""Scale-out, shown not told: two ingests behind nginx and two sinks in one
consumer group (and two senders), on a private stack of their own
(MAILPIPE_INGEST_INSTANCES=2, MAILPIPE_SINK_INSTANCES=2,
MAILPIPE_SENDER_INSTANCES=2), so the session stack stays as it is.

Under a steady load of signed webhook batches one sink is killed with
SIGKILL (the supervisor restarts it), then killed again and held down: the
other sink takes over its partitions after the session time-out. One ingest
is killed the same way: nginx sends what the dead one cannot take to the
survivor. Every event answered 2xx must be in `events` exactly once. The
figures (accepted, stored, duplicates, time to recover) are printed in the
terminal summary ("mailpipe scale-out figures").

Partition ownership is read from the sinks' own logs ("assigned"/"revoked"
lines of their rebalance callback, per process id): the embedded broker
(librdkafka's mock cluster) does not answer DescribeGroups.
"""

import datetime
import os
import re
import signal
import threading
import time

import pytest

from helpers import mailpipe as mpl
from helpers.mailpipe import EVENTS_TOPIC, new_event, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PARTITIONS = {0, 1, 2, 3}       # sendgrid.events (kafka-dev's default topics)
SESSION_TIMEOUT_S = int(mpl.STACK_ENV["MAILPIPE_KAFKA_SESSION_TIMEOUT_MS"]) / 1000
BATCH = 10                      # events per webhook post
LOAD_SECONDS = 20
LOAD_PAUSE_S = 0.005            # between two posts: steady, not flat out (2 shared cores)
REBALANCE_LINE = re.compile(
    r'^ts=(\S+) .*\bpid=(\d+) msg="(assigned|revoked) topic=(\S+) partition=(\d+)')
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')

FIGURES = []                    # lines for the summary


def figure(text):
    FIGURES.append(text)
    print(text)


@pytest.fixture(scope="module")
def scaled(request):
    """A private stack with 2 ingests and 2 sinks (helpers.mailpipe.Stack),
    in its own run dir on its own free ports, stopped after this module."""
    config = request.config
    st = mpl.start_private_stack(REPO, "mailpipe-scale-", {
        "MAILPIPE_INGEST_INSTANCES": "2",
        "MAILPIPE_SINK_INSTANCES": "2",
        "MAILPIPE_SENDER_INSTANCES": "2",
    })
    failed = False
    try:
        yield st
    except BaseException:
        failed = True
        raise
    finally:
        reports = getattr(config, "mailpipe_report", None)
        if reports is None:
            reports = config.mailpipe_report = []
        if FIGURES:
            reports.append(("mailpipe scale-out figures", "\n".join(FIGURES)))
        if failed or request.session.testsfailed:
            reports.append(("scale-out stack logs (tails, run dir %s)" % st.run_dir,
                            st.log_tails()))
        reports.extend(("scale-out: " + title, text)
                       for title, text in mpl.stop_private_stack(st))


# --- partition ownership, from the sinks' logs --------------------------------

def parse_ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def assignment_history(st, svc, topic=EVENTS_TOPIC):
    """[(time, pid, frozenset of topic's partitions)] after every rebalance line
    of svc's log, per process."""
    path = os.path.join(st.run_dir, "logs", svc + ".log")
    owned, out = {}, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = REBALANCE_LINE.match(line)
            if not m or m.group(4) != topic:
                continue
            pid, part = int(m.group(2)), int(m.group(5))
            cur = owned.setdefault(pid, set())
            if m.group(3) == "assigned":
                cur.add(part)
            else:
                cur.discard(part)
            out.append((parse_ts(m.group(1)), pid, frozenset(cur)))
    return out


def owned_now(st, svc, topic=EVENTS_TOPIC):
    """The partitions of topic svc's current process owns (empty if it is down)."""
    pid = st.pid_of(svc)
    if not pid or not mpl.pid_alive(pid):
        return frozenset()
    hist = [h for h in assignment_history(st, svc, topic) if h[1] == pid]
    return hist[-1][2] if hist else frozenset()


def wait_owners(st, want, timeout, desc, svcs=("sink", "sink-2"), topic=EVENTS_TOPIC):
    """Wait until want({svc: partitions}) is true for svcs (sink and sink-2)."""
    def ok():
        owners = {s: owned_now(st, s, topic) for s in svcs}
        if not want(owners):
            raise AssertionError(owners)
        return owners
    return wait_until(ok, timeout, interval=0.2, desc=desc)


def both_share(owners):
    """Two services own the 4 partitions between them, each at least one."""
    a, b = owners.values()
    return a and b and not (a & b) and a | b == PARTITIONS


def first_time_owning(st, svc, pid, parts, after):
    """Time of the first log line after `after` at which svc's process pid owns
    parts (a superset)."""
    for t, p, owned in assignment_history(st, svc):
        if p == pid and t >= after and parts <= owned:
            return t
    return None


# --- load ------------------------------------------------------------------------

class Load(threading.Thread):
    """Posts signed batches of BATCH new events, one after the other, until
    stopped; remembers the sg_event_ids answered 2xx and the other answers."""

    def __init__(self, st, tag):
        super().__init__(daemon=True)
        self.st, self.tag = st, tag
        self.accepted = set()
        self.posted = 0
        self.failures = {}          # status (or exception name) -> count
        self.ok_times = []          # time of every 2xx answer
        self.fail_times = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            batch = [new_event(self.tag) for _ in range(BATCH)]
            self.posted += 1
            try:
                r = self.st.post_webhook(batch, timeout=15)
                status = r.status_code
            except Exception as e:  # noqa: BLE001 - a failed request is a figure
                status = type(e).__name__
            now = time.time()
            if isinstance(status, int) and 200 <= status < 300:
                self.accepted.update(ev["sg_event_id"] for ev in batch)
                self.ok_times.append(now)
            else:
                self.failures[status] = self.failures.get(status, 0) + 1
                self.fail_times.append(now)
            self.stop.wait(LOAD_PAUSE_S)

    def finish(self):
        self.stop.set()
        self.join(60)
        assert not self.is_alive(), "the load thread does not stop"


def log_count(st, svc, needle):
    with open(os.path.join(st.run_dir, "logs", svc + ".log"), encoding="utf-8",
              errors="replace") as f:
        return sum(1 for line in f if needle in line)


def passed_on(st):
    """Webhook posts of nginx's access log that a second ingest answered
    (upstream statuses "502, 200" and the like)."""
    retried = re.compile(r'"POST /webhooks/sendgrid [^"]*" 2\d\d .* ustatus=\d+, ')
    with open(os.path.join(st.run_dir, "logs", "nginx-access.log"), encoding="utf-8",
              errors="replace") as f:
        return sum(1 for line in f if retried.search(line))


def stored_ids(st, tag):
    return [r[0] for r in st.query(
        "select sg_event_id from events where starts_with(sg_event_id, %s)", tag + "-")]


def check_exactly_once(st, tag, load, what):
    """Every 2xx event stored exactly once; returns (rows, distinct)."""
    st.wait_sink_idle(timeout=120)
    ids = stored_ids(st, tag)
    distinct = set(ids)
    missing = load.accepted - distinct
    dups = len(ids) - len(distinct)
    figure("%s: %d batches posted, %d events accepted (2xx), %d failed posts %r; "
           "%d rows stored, %d distinct, %d duplicates, %d accepted but missing, "
           "%d stored without a 2xx" % (
               what, load.posted, len(load.accepted), sum(load.failures.values()),
               load.failures, len(ids), len(distinct), dups, len(missing),
               len(distinct - load.accepted)))
    assert not missing, "%d accepted events were lost, e.g. %r" % (
        len(missing), sorted(missing)[:5])
    assert dups == 0, "%d duplicate rows" % dups
    assert len(load.accepted) > 0
    # two sinks write the same rollup rows: a conflict between them is retried,
    # never taken for bad data
    dead = st.dead_letters(tag + "-")
    assert not dead, "%d events of this run were dead-lettered: %r" % (len(dead), dead[:3])
    figure("%s: sink log lines so far mentioning a deadlock (retried): %d"
           % (what, sum(log_count(st, s, "deadlock") for s in ("sink", "sink-2"))))
    return len(ids), len(distinct)


# --- metrics ---------------------------------------------------------------------

def scrape(st):
    r = st.request("GET", "/metrics", headers={"Authorization": "Bearer " + st.api_key})
    assert r.status_code == 200, "GET /metrics: %d %r" % (r.status_code, r.text[:300])
    out = []
    for line in r.text.splitlines():
        m = SAMPLE_RE.match(line)
        if not line or line.startswith("#") or not m:
            continue
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def webhook_requests_by_ingest(st):
    """{instance: webhook requests answered} of every fresh ingest instance."""
    ss = scrape(st)
    fresh = {l["instance"] for n, l, v in ss
             if n == "mailpipe_up" and l.get("process") == "ingest" and v == 1}
    out = {i: 0.0 for i in fresh}
    for n, l, v in ss:
        if (n == "mailpipe_http_requests_total" and l.get("process") == "ingest"
                and l.get("instance") in fresh and l.get("route") == mpl.WEBHOOK_PATH):
            out[l["instance"]] += v
    return out


# --- the tests -------------------------------------------------------------------

def test_every_instance_is_a_supervised_service(scaled):
    status = scaled.stack("status").stdout
    for svc in ("ingest", "ingest-2", "sink", "sink-2"):
        assert re.search(r"^%s +\d+ +up " % re.escape(svc), status, re.M), status
        assert os.path.exists(os.path.join(scaled.run_dir, "logs", svc + ".log"))
    for sock in ("ingest.sock", "ingest-2.sock"):
        assert os.path.exists(os.path.join(scaled.run_dir, "sock", sock))
    with open(os.path.join(scaled.run_dir, "nginx", "nginx.conf"), encoding="utf-8") as f:
        conf = f.read()
    upstream = re.search(r"upstream ingest \{(.*?)\}", conf, re.S).group(1)
    assert "sock/ingest.sock" in upstream and "sock/ingest-2.sock" in upstream, upstream
    # stop/start of one instance leaves the other alone
    other = scaled.pid_of("ingest")
    old = scaled.pid_of("ingest-2")
    scaled.stack("restart", "ingest-2")
    new = scaled.wait_pid("ingest-2", not_pid=old)
    assert scaled.pid_of("ingest") == other
    assert new != old
    # instances beyond the configured count do not exist
    bad = scaled.stack("stop", "sink-3", check=False)
    assert bad.returncode != 0 and "unknown service 'sink-3'" in bad.stdout, bad.stdout


def test_both_sinks_own_partitions(scaled):
    owners = wait_owners(scaled, both_share, 60,
                         "sink and sink-2 to share the 4 events partitions")
    figure("assignment at start: sink %s, sink-2 %s" % (
        sorted(owners["sink"]), sorted(owners["sink-2"])))


def test_both_ingests_serve(scaled, tag):
    before = webhook_requests_by_ingest(scaled)
    for _ in range(20):
        r = scaled.post_webhook([new_event(tag)])
        assert r.status_code == 200, r.text

    def both_counted():
        now = webhook_requests_by_ingest(scaled)
        if len(now) != 2:
            raise AssertionError("fresh ingest instances: %r" % now)
        grew = {i: v - before.get(i, 0) for i, v in now.items()}
        if not all(g > 0 for g in grew.values()) or sum(grew.values()) < 20:
            raise AssertionError("requests per instance: %r" % grew)
        return grew
    grew = wait_until(both_counted, 20, interval=0.5,
                      desc="both ingest instances to count webhook requests")
    figure("20 webhook posts, answered per ingest instance: %s"
           % sorted(int(v) for v in grew.values()))
    scaled.wait_rows(tag, 20)


def test_sink_killed_under_load_loses_and_doubles_nothing(scaled, tag):
    """kill -9 sink-2 mid-load; its supervisor restarts it. The group
    rebalances (after the session time-out for the dead member) and the
    records it had not committed are consumed again: stored once."""
    wait_owners(scaled, both_share, 60, "both sinks to own partitions")
    load = Load(scaled, tag)
    load.start()
    try:
        time.sleep(5)
        victim = scaled.pid_of("sink-2")
        lost = owned_now(scaled, "sink-2")
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        scaled.wait_pid("sink-2", not_pid=victim, timeout=30)
        owners = wait_owners(scaled, both_share, 60,
                             "both sinks to own partitions again after the kill")
        recovered = time.time() - killed_at
        time.sleep(max(0, LOAD_SECONDS - 5 - recovered))
    finally:
        load.finish()
    figure("sink-2 (pid %d, partitions %s) killed -9 under load: partitions "
           "shared again after %.1fs (sink %s, sink-2 %s; session timeout %.0fs)" % (
               victim, sorted(lost), recovered, sorted(owners["sink"]),
               sorted(owners["sink-2"]), SESSION_TIMEOUT_S))
    check_exactly_once(scaled, tag, load, "sink kill -9")


def test_survivor_takes_over_partitions_of_a_killed_sink(scaled, tag):
    """kill -9 sink-2 and keep it down (hold/sink-2, as `ops/stack stop`
    does): sink owns all 4 partitions after the session time-out, and
    everything accepted meanwhile is stored once."""
    wait_owners(scaled, both_share, 60, "both sinks to own partitions")
    survivor = scaled.pid_of("sink")
    load = Load(scaled, tag)
    load.start()
    try:
        time.sleep(3)
        victim = scaled.pid_of("sink-2")
        lost = owned_now(scaled, "sink-2")
        with open(os.path.join(scaled.run_dir, "hold", "sink-2"), "w", encoding="ascii"):
            pass
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        wait_owners(scaled, lambda o: o["sink"] == PARTITIONS and not o["sink-2"],
                    SESSION_TIMEOUT_S + 40, "sink to own all 4 partitions")
        took = first_time_owning(scaled, "sink", survivor, PARTITIONS, killed_at - 1)
        takeover = (took or time.time()) - killed_at
        status = scaled.stack("status").stdout
        assert re.search(r"^sink-2 +- +held ", status, re.M), status
        time.sleep(max(0, LOAD_SECONDS - 3 - takeover))
        rows_mid = scaled.count_events(tag)[0]
    finally:
        load.finish()
    figure("sink-2 (partitions %s) killed -9 and held: sink (pid %d) owns all 4 "
           "partitions %.1fs after the kill (session timeout %.0fs)" % (
               sorted(lost), survivor, takeover, SESSION_TIMEOUT_S))
    assert scaled.pid_of("sink") == survivor, "the survivor restarted"
    assert rows_mid > 0
    check_exactly_once(scaled, tag, load, "sink kill -9, held down")
    # back to two: `ops/stack start` lifts the hold
    scaled.stack("start", "sink-2")
    wait_owners(scaled, both_share, 60, "both sinks to own partitions after start")


def test_ingest_killed_under_load(scaled, tag):
    """kill -9 ingest-2 mid-load, then again held down: requests may fail
    while it dies, every 2xx is stored once, and ingest keeps serving."""
    load = Load(scaled, tag)
    load.start()
    try:
        time.sleep(4)
        victim = scaled.pid_of("ingest-2")
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        scaled.wait_pid("ingest-2", not_pid=victim, timeout=30)
        restarted = time.time() - killed_at
        time.sleep(4)
        # held down now: the survivor alone serves
        victim2 = scaled.pid_of("ingest-2")
        with open(os.path.join(scaled.run_dir, "hold", "ingest-2"), "w", encoding="ascii"):
            pass
        held_at = time.time()
        os.kill(victim2, signal.SIGKILL)
        time.sleep(6)
        ok_alone = sum(1 for t in load.ok_times if t > held_at + 1)
        fail_alone = sum(1 for t in load.fail_times if t > held_at + 1)
        scaled.stack("start", "ingest-2")
        time.sleep(4)
    finally:
        load.finish()
    fails_after_kill = sum(1 for t in load.fail_times if t >= killed_at)
    figure("ingest-2 killed -9 under load: back after %.1fs; failed posts after "
           "the kills %d; with ingest-2 held down: %d posts 2xx, %d failed; webhook posts "
           "nginx passed on to the other ingest: %d" % (
               restarted, fails_after_kill, ok_alone, fail_alone, passed_on(scaled)))
    assert ok_alone > 0, "ingest alone served nothing"
    # nginx passes what the dead one cannot take to the survivor: without that, about
    # half the posts would fail (a slow Kafka may still fail one now and then)
    assert fail_alone * 10 <= ok_alone + fail_alone, (
        "%d of %d posts failed with ingest up: %r" % (
            fail_alone, ok_alone + fail_alone, load.failures))
    check_exactly_once(scaled, tag, load, "ingest kill -9")


def test_two_senders_send_each_mail_once(scaled):
    """MAILPIPE_SENDER_INSTANCES=2: both senders own mail.requests partitions
    and every mail goes to SendGrid (the simulator) exactly once."""
    owners = wait_owners(scaled, both_share, 60, "sender and sender-2 to share mail.requests",
                         svcs=("sender", "sender-2"), topic=mpl.MAIL_TOPIC)
    ids = [scaled.send_ok(mpl.mail_body()) for _ in range(20)]
    for mid in ids:
        scaled.wait_status(mid, mpl.SENT_OR_BEYOND, timeout=60)
    counts = [scaled.sim_count(mid) for mid in ids]
    figure("senders: sender %s, sender-2 %s of mail.requests; 20 mails, sent %s times"
           % (sorted(owners["sender"]), sorted(owners["sender-2"]), sorted(set(counts))))
    assert counts == [1] * len(ids), counts


def test_new_broker_restarts_every_instance(scaled, tag):
    """A new Kafka broker (ops/stack restart kafka) restarts every instance of
    the Kafka clients, and the scaled stack works again afterwards. Last: the
    new broker starts empty."""
    svcs = ("ingest", "ingest-2", "sink", "sink-2", "sender", "sender-2")
    old = {s: scaled.pid_of(s) for s in svcs}
    scaled.stack("restart", "kafka", timeout=240)
    for s in svcs:
        scaled.wait_pid(s, not_pid=old[s], timeout=60)
    scaled.load_env()           # the new broker list
    wait_owners(scaled, both_share, 60, "both sinks to own partitions on the new broker")

    def posted():
        r = scaled.post_webhook([new_event(tag)])
        return r.status_code == 200 or None
    wait_until(posted, 30, interval=0.5, desc="a webhook post answered 200")
    scaled.wait_rows(tag, 1)
