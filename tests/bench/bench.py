#!/usr/bin/python3
"""tests/bench/bench.py: `make bench`, mailpipe's figures against same-run references.

    /usr/bin/python3 tests/bench/bench.py [--smoke] [--seconds S] [--read-events N]
                                          [--skip-read] [--skip-sinks] [--results DIR]
                                          [--keep]

Starts a private stack (ops/stack up in a temp run dir on free loopback ports, with two
sink instances, sink-2 held until the 2-sink stage) and a second nginx of its own: the
stack's rendered nginx.conf on other ports plus two bench-only locations, `return 204`
and the FastCGI stub (build/bench/fcgi_stub).  Production routes are not touched.  Then,
in one run:

  read        /v3/stats and /v3/messages latency at --read-events stored events
              (tests/bench/read_api.py's loader and cases, few requests per case)
  refs        nginx return 204 and the FastCGI stub for the same signed bodies (wrk),
              a confluent_kafka producer (idempotent, acks=all) into the same broker with
              the same message sizes, redis-benchmark of MGET and SET .. EX (the sink's
              commands, lib/idem.c), COPY of the stored rows into an events-shaped table
  ingest      POST /webhooks/sendgrid events/s with signed batches of 1, 10, 100, 1000
  e2e         batches of 100 at full speed for S seconds: rows/s into PostgreSQL
  latency     paced batches at 50% and 80% of that rate: POST-to-row p50/p99/max from the
              sink's mailpipe_webhook_to_row_seconds histogram (GET /metrics)
  sinks       the same e2e stage with sink-2 started (2 sinks)
  mail        POST /v3/mail/send requests/s (wrk, distinct bodies), the sender's sends/s
              against the simulator
  rss         VmHWM of every service process (pids/*.pid)

Correctness: every stage's events carry their own event_time range; after the sink drains,
rows in that range equal the events the webhook answered 2xx for ("received"), with no
duplicate sg_event_id.  Prints the table and writes tests/bench/results/
bench-<date>-<commit>.md.  --smoke (make bench-smoke, CI): every stage for about a
second (batches of 100 only, one sink, 10,000 read events; about 15 s of load, 30 s in
all), asserts correctness, no timing assertions.
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import psycopg2  # noqa: E402
import requests  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from helpers import mailpipe as mpl  # noqa: E402
import read_api  # noqa: E402

UTC = datetime.timezone.utc
LUA = os.path.join(HERE, "post.lua")
BATCHES = (1, 10, 100, 1000)
# event_time of stage K's events: its own day, far from real data and the simulator's
STAGE_EPOCH = int(datetime.datetime(2031, 1, 1, tzinfo=UTC).timestamp())
# kafka-dev is librdkafka's mock cluster: it trims each partition's log at a few MB (5 MB
# in librdkafka 2.0), silently; a backlog beyond that is lost to the sink (offset out of
# range).  The e2e stages post at most this many events (~16 MB over 4 partitions).
MOCK_BACKLOG = 35000
MAIL_BACKLOG = 20000   # mail records are ~450 bytes: ~9 MB over 4 partitions
EVENT_COLS = ("sg_event_id, event, email, event_time, sg_message_id, message_id, category,"
              " reason, status, type, url, raw, received_at, kafka_partition, kafka_offset")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- the stack and the bench nginx -----------------------------------------------------------
def start_stack(run_dir, sinks):
    # the production settings (not the tests' short time-outs)
    return mpl.start_private_stack(REPO, run_dir=run_dir, test_env=False, ready="/readyz",
                                   env_overrides={
        # the webhook's rate limit stays in the path but never answers 429 here
        "MAILPIPE_NGINX_WEBHOOK_RATE": "1000000r/s",
        "MAILPIPE_NGINX_WEBHOOK_BURST": "1000000",
        "MAILPIPE_SINK_INSTANCES": str(sinks),
        "MAILPIPE_METRICS_PUSH_SECONDS": "1",
    })


class BenchNginx:
    """A second nginx: the stack's rendered nginx.conf on its own ports, with the
    bench-only locations /bench/return204 and /bench/fcgi-stub (the same limit_req as
    the webhook) next to the production ones, and the FastCGI stub behind it."""

    def __init__(self, st):
        self.st = st
        self.dir = os.path.join(st.run_dir, "bench")
        self.procs = []
        self.port = None

    def start(self):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        rd = self.st.run_dir
        sock = os.path.join(rd, "sock", "bench-stub.sock")
        stub = os.path.join(self.st.env["MAILPIPE_BIN_DIR"], "bench", "fcgi_stub")
        if not os.access(stub, os.X_OK):
            sys.exit("%s is missing: make %s" % (stub, os.path.relpath(stub, REPO)))
        threads = os.environ.get("MAILPIPE_INGEST_THREADS", "8")
        self._spawn([stub, sock, threads], "bench-stub.log")
        mpl.wait_until(lambda: os.path.exists(sock), 10, desc="the stub's socket")
        with open(os.path.join(rd, "nginx", "nginx.conf"), encoding="utf-8") as f:
            conf = f.read()
        self.port, sim_port = mpl.free_ports(2)
        conf = conf.replace("listen 127.0.0.1:%s " % self.st.vars.get(
            "MAILPIPE_HTTPS_PORT", self.st.env["MAILPIPE_HTTPS_PORT"]),
            "listen 127.0.0.1:%d " % self.port)
        conf = conf.replace("listen 127.0.0.1:%s " % self.st.env["MAILPIPE_SIM_PORT"],
                            "listen 127.0.0.1:%d " % sim_port)
        conf = re.sub(r"(?m)^pid .*;$", "pid %s/nginx.pid;" % self.dir, conf)
        conf = re.sub(r"(?m)^error_log .*;$", "error_log %s/logs/bench-nginx.log warn;" % rd, conf)
        conf = conf.replace("%s/logs/nginx-access.log" % rd, "%s/logs/bench-nginx-access.log" % rd)
        conf = conf.replace("%s/nginx/tmp/" % rd, "%s/tmp/" % self.dir)
        conf = conf.replace("shared:mailpipe_ssl:", "shared:bench_ssl:")
        m = re.search(r"\n(\s*)location = /webhooks/sendgrid \{\n(.*?)\n\s*\}", conf, re.S)
        if not m:
            sys.exit("cannot find the webhook location in %s/nginx/nginx.conf" % rd)
        ind = m.group(1)
        limit = [ln.strip() for ln in m.group(2).splitlines() if "limit_req" in ln]
        extra = ("\n%s# bench only (tests/bench/bench.py)\n"
                 "%slocation = /bench/return204 {\n%s    %s\n%s    return 204;\n%s}\n"
                 "%slocation = /bench/fcgi-stub {\n%s    %s\n%s    fastcgi_pass unix:%s;\n%s}\n"
                 % (ind, ind, ind, " ".join(limit), ind, ind,
                    ind, ind, " ".join(limit), ind, sock, ind))
        conf = conf[:m.start()] + extra + conf[m.start():]
        for sub in ("body", "fastcgi", "proxy", "scgi", "uwsgi"):
            os.makedirs(os.path.join(self.dir, "tmp", sub), exist_ok=True)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "www-data:www-data", os.path.join(self.dir, "tmp")],
                           check=False)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self._spawn([nginx, "-p", self.dir + "/", "-c", path,
                     "-e", os.path.join(rd, "logs", "bench-nginx.log")], "bench-nginx.out")
        url = "https://127.0.0.1:%d/bench/return204" % self.port
        mpl.wait_until(lambda: requests.post(url, data=b"{}", verify=False,
                                             timeout=2).status_code == 204,
                       15, desc="the bench nginx")

    def _spawn(self, cmd, logname):
        out = open(os.path.join(self.st.run_dir, "logs", logname), "ab")
        self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True))
        out.close()

    def pids(self):
        return [("bench-" + ("stub" if i == 0 else "nginx"), p.pid)
                for i, p in enumerate(self.procs)]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


# --- bodies ------------------------------------------------------------------------------------
class Bodies:
    """Signed webhook batches for one stage: distinct sg_event_ids, event_time in the
    stage's own day (so rows are counted by an index range)."""

    def __init__(self, st, stage):
        self.key = st.signing_key()
        self.stage = stage
        self.t0 = STAGE_EPOCH + stage * 86400
        self.seq = 0

    def events(self, n):
        out = []
        for _ in range(n):
            self.seq += 1
            xid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
            out.append({
                "email": "user%d@example.com" % (self.seq % 5000),
                "timestamp": self.t0 + (self.seq % 80000),
                "smtp-id": "<%s@ismtpd0001p1lon1.sendgrid.net>" % xid,
                "event": "delivered",
                "category": ["newsletter"],
                "sg_event_id": "b%d-%s" % (self.stage, uuid.uuid4().hex),
                "sg_message_id": "%s.filterdrecv-p3las1-5bf4e9c5b7-8vx9q-18-5F2B0A1B-6.0" % xid,
                "response": "250 OK ",
                "tls": 1,
                "ip": "168.1.1.1",
            })
        return out

    def batch(self, n):
        body = mpl.encode(self.events(n))
        ts = str(int(time.time()))
        sig = base64.b64encode(self.key.sign(ts.encode() + body,
                                             ec.ECDSA(hashes.SHA256()))).decode()
        return body, ts, sig

    def write(self, path, url_path, batch, count):
        """count signed batches as wrk request lines; returns the total body bytes."""
        total = 0
        with open(path, "w", encoding="utf-8") as f:
            for _ in range(count):
                body, ts, sig = self.batch(batch)
                total += len(body)
                f.write("%s\tContent-Type: application/json\t%s: %s\t%s: %s\t%s\n" % (
                    url_path, mpl.TS_HEADER, ts, mpl.SIG_HEADER, sig, body.decode()))
        return total

    def range(self):
        return (datetime.datetime.fromtimestamp(self.t0, UTC),
                datetime.datetime.fromtimestamp(self.t0 + 86400, UTC))


# wrk's connections for every HTTP stage, references and mailpipe alike (--conns):
# enough requests in flight that a request waiting for Kafka's acknowledgement does not
# idle the machine; ingest.threads (64 by default) serves as many at once.
CONNS = 64


def machine_busy_s():
    """CPU seconds the whole machine has been busy (every core, every process)."""
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    return (sum(t) - t[3] - t[4]) / os.sysconf("SC_CLK_TCK")


def wrk(base_url, reqfile, seconds, threads=2, conns=None, once=False):
    conns = conns or CONNS
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % max(1, int(seconds)),
           "--timeout", "20s", "-s", LUA, base_url, "--", reqfile, str(threads),
           "1" if once else "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            r = json.loads(line[len("BENCH-JSON "):])
            r["seconds"] = r["duration_us"] / 1e6
            return r
    raise RuntimeError("wrk said no result (exit %d):\n%s\n%s"
                       % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))


# --- measurements ----------------------------------------------------------------------------
class Bench:
    def __init__(self, st, ng, args):
        self.st, self.ng, self.args = st, ng, args
        self.rows = []          # (figure, value, unit, reference, ratio, target, met)
        self.notes = []
        self.checks = []        # (stage, stored, accepted, distinct, ok)
        self.stage_no = 0
        self.work = os.path.join(st.run_dir, "bench")
        self.url = st.url
        self.bench_url = "https://127.0.0.1:%d" % ng.port
        self.figures = {}
        self.cpu_shares = {}
        self.stub_cpu_us = {}   # batch: machine CPU-us per event while the stub served it

    def add(self, figure, value, unit, ref=None, target=None, met=None, ratio=None):
        if ratio is None and ref:
            ratio = value / ref if ref else None
        self.rows.append((figure, value, unit, ref, ratio, target, met, loadavg()))
        log("%s: %s %s%s (load %s)" % (figure, fmt(value), unit,
                                       "" if ref is None else " / ref %s" % fmt(ref), loadavg()))

    def new_bodies(self):
        self.stage_no += 1
        return Bodies(self.st, self.stage_no)

    def stored(self, bodies):
        lo, hi = bodies.range()
        return self.st.query("SELECT count(*), count(DISTINCT sg_event_id) FROM events"
                             " WHERE event_time >= %s AND event_time < %s", lo, hi)[0]

    def wait_drain(self, bodies, expect, timeout):
        """Wait until the stage's rows stop growing (or reach expect)."""
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.stored(bodies)[0]
            if n >= expect and expect > 0:
                return n
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since > 5:
                return n
            time.sleep(0.5)
        return last

    def idle(self, timeout=300):
        """Wait until the sink group committed everything; seconds it took."""
        t0 = time.monotonic()
        try:
            self.st.wait_sink_idle(timeout)
        except AssertionError as e:
            self.notes.append("sink not idle after %d s: %s" % (timeout, str(e)[:200]))
        return time.monotonic() - t0

    def check(self, name, bodies, accepted, timeout=120):
        self.idle(timeout)
        n = self.wait_drain(bodies, accepted, 10)
        rows, distinct = self.stored(bodies)
        ok = rows == accepted and distinct == rows
        self.checks.append((name, rows, accepted, distinct, ok))
        log("correctness %s: rows %d, accepted 2xx %d, distinct %d: %s"
            % (name, rows, accepted, distinct, "OK" if ok else "MISMATCH"))
        return n

    # references ---------------------------------------------------------------------------
    def http_refs(self, reqfiles, seconds):
        out = {}
        for batch, path in reqfiles.items():
            for ref, loc in (("nginx return 204", "/bench/return204"),
                             ("FastCGI stub", "/bench/fcgi-stub")):
                # the same request lines, another location on the bench nginx
                alt = path + ".ref"
                with open(path, encoding="utf-8") as f, open(alt, "w", encoding="utf-8") as g:
                    for line in f:
                        g.write(loc + line[line.index("\t"):])
                c0 = machine_busy_s()
                r = wrk(self.bench_url, alt, seconds)
                busy = machine_busy_s() - c0
                out[(ref, batch)] = r["ok"] * batch / r["seconds"]
                if ref == "FastCGI stub" and r["ok"]:
                    self.stub_cpu_us[batch] = busy / (r["ok"] * batch) * 1e6
                if r["bad"]:
                    self.notes.append("%s batch %d: %d non-2xx" % (ref, batch, r["bad"]))
        return out

    def kafka_ref(self, sizes, seconds):
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.st.vars["KAFKA_BROKERS"],
                      "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                      "queue.buffering.max.messages": 1000000})
        msgs = [json.dumps(e, separators=(",", ":")).encode() for e in sizes]
        topic = "bench.kafka-ref"
        delivered = [0]
        failed = [0]

        def cb(err, _msg):
            if err is None:
                delivered[0] += 1
            else:
                failed[0] += 1
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            try:
                p.produce(topic, msgs[i % len(msgs)], on_delivery=cb)
                i += 1
            except BufferError:
                p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        p.flush(60)
        dt = time.monotonic() - t0
        if failed[0]:
            self.notes.append("kafka producer ref: %d delivery failures" % failed[0])
        return delivered[0] / dt

    def redis_ref(self, n):
        port = self.st.env["MAILPIPE_REDIS_PORT"]
        out = {}
        for name, cmd in (("SET k 1 EX 604800, pipelined 100", ["SET", "bench:ev:__rand_int__",
                                                                 "1", "EX", "604800"]),
                          ("MGET 100 keys", ["MGET"] + ["bench:ev:__rand_int__"] * 100)):
            args = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "-n", str(n),
                    "-r", "1000000", "-c", "8", "--csv"]
            if name.startswith("SET"):
                args += ["-P", "100"]
            proc = subprocess.run(args + cmd, capture_output=True, text=True, timeout=120)
            m = re.findall(r'"([0-9.]+)"', proc.stdout)
            out[name] = float(m[0]) if m else 0.0
        return out

    def ingest_floor(self, reqfile, seconds):
        """build/bench/ingest_floor on the first batch of reqfile: CPU-us per event of
        signature, parsing and producing (client and broker), mailpipe's own code."""
        from cryptography.hazmat.primitives import serialization
        pub = base64.b64encode(self.st.signing_key().public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        broker = dict(self.service_pids()).get("kafka", 0)
        exe = os.path.join(os.environ.get("MAILPIPE_BIN_DIR", os.path.join(REPO, "build")),
                           "bench", "ingest_floor")
        proc = subprocess.run([exe, reqfile, pub, self.st.vars["KAFKA_BROKERS"],
                               str(seconds), str(broker)],
                              capture_output=True, text=True, timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError("ingest_floor failed: %s" % proc.stderr[-2000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def copy_ref(self, bodies):
        """COPY of the e2e stage's stored rows into an events-shaped temp table (the
        events columns, no indexes): rows/s."""
        lo, hi = bodies.range()
        conn = self.st.db()
        try:
            import io
            buf = io.StringIO()
            with conn.cursor() as cur:
                cur.copy_expert(cur.mogrify(
                    "COPY (SELECT %s FROM events WHERE event_time >= %%s AND event_time < %%s)"
                    " TO STDOUT" % EVENT_COLS, (lo, hi)).decode(), buf)
            n = buf.getvalue().count("\n")
            if n == 0:
                return 0.0, 0
            conn.autocommit = False
            out = []
            # the brief's reference: a temp table with the events columns; then a logged
            # table with the events indexes too (what the sink writes into)
            for table, ddl in (
                    ("bench_copy", "CREATE TEMP TABLE bench_copy (LIKE events INCLUDING DEFAULTS)"),
                    ("bench_copy_idx", "CREATE TABLE bench_copy_idx"
                                       " (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)")):
                with conn.cursor() as cur:
                    cur.execute(ddl)
                    conn.commit()
                    buf.seek(0)
                    t0 = time.monotonic()
                    cur.copy_expert("COPY %s (%s) FROM STDIN" % (table, EVENT_COLS), buf)
                    conn.commit()
                    out.append(n / (time.monotonic() - t0))
                    cur.execute("DROP TABLE %s" % table)
                    conn.commit()
            return out[0], out[1], n
        finally:
            conn.close()

    # mailpipe ----------------------------------------------------------------------------
    def e2e(self, seconds, ingest_rate, label):
        """Batches of 100 at full speed for `seconds`, each posted once: rows/s."""
        b = self.new_bodies()
        # about `seconds` of posting at the ingest rate, each batch once; wrk stops when
        # every batch answered (its -d is only a bound)
        # at most MOCK_BACKLOG events: the dev broker trims each partition at a few MB
        cap = 5000 if self.args.smoke else MOCK_BACKLOG
        count = max(20, int(min(ingest_rate * seconds, cap) / 100))
        path = os.path.join(self.work, "e2e-%d.req" % b.stage)
        b.write(path, mpl.WEBHOOK_PATH, 100, count)
        samples = []
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                samples.append((time.monotonic(), self.stored(b)[0]))
                stop.wait(0.5)
        th = threading.Thread(target=sampler, daemon=True)
        t0 = time.monotonic()
        c0 = self.cpu()
        th.start()
        r = wrk(self.url, path, seconds * 2, once=True)
        t_post = time.monotonic()
        self.idle(300)
        self.wait_drain(b, r["received"], 10)
        stop.set()
        th.join()
        self.cpu_note(label, c0, self.cpu(), time.monotonic() - t0, r["received"])
        # the first sample that saw the final count
        t_end = min(t for t, n in samples if n == samples[-1][1]) if samples else t_post
        rows = samples[-1][1] if samples else 0
        # sustained: rows/s from the first row to the last (backlog included)
        first = next((t for t, n in samples if n > 0), t0)
        rate = rows / max(0.5, t_end - first)
        self.check(label, b, r["received"])
        return rate, r, b

    def paced(self, rate, seconds, label):
        """Batches of 100 at `rate` events/s from a few keep-alive sessions; each
        answer checked.  Returns the POST-to-row histogram delta."""
        b = self.new_bodies()
        per_s = max(1.0, rate / 100.0)
        n = max(5, int(per_s * seconds))
        batches = [b.batch(100) for _ in range(n)]
        before = self.histogram()
        accepted = [0]
        lock = threading.Lock()
        nthreads = 4
        t0 = time.monotonic()

        def worker(k):
            s = requests.Session()
            for i in range(k, n, nthreads):
                due = t0 + i / per_s
                d = due - time.monotonic()
                if d > 0:
                    time.sleep(d)
                body, ts, sig = batches[i]
                r = s.post(self.url + mpl.WEBHOOK_PATH, data=body, verify=self.st.vars["MAILPIPE_CA"],
                           headers={"Content-Type": "application/json",
                                    mpl.TS_HEADER: ts, mpl.SIG_HEADER: sig}, timeout=30)
                if 200 <= r.status_code < 300:
                    with lock:
                        accepted[0] += r.json().get("received", 0)
        ths = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        achieved = n * 100 / (time.monotonic() - t0)
        self.check(label, b, accepted[0])
        time.sleep(2.5)   # the sink pushes its metrics every second
        after = self.histogram()
        return hist_delta(before, after), achieved

    def histogram(self):
        r = self.st.request("GET", "/metrics", headers={
            "Authorization": "Bearer " + self.st.api_key}, timeout=10)
        out = {}
        for line in r.text.splitlines():
            if line.startswith("mailpipe_webhook_to_row_seconds_bucket"):
                m = re.search(r'le="([^"]+)"\}?\s+([0-9.e+]+)$', line)
                if m:
                    le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                    out[le] = out.get(le, 0) + float(m.group(2))
        return out

    def mail(self, seconds, window):
        path = os.path.join(self.work, "mail.req")
        key = self.st.api_key
        # time-bound, not count-bound: more bodies than `seconds` can take up to 10,000
        # requests/s (a count-bound run measures its slowest connection's last answer),
        # and no more than the dev broker keeps (MAIL_BACKLOG): hence at most 2 s
        seconds = min(seconds, 2)
        n = max(200, min(MAIL_BACKLOG, int(seconds * 10000)))
        with open(path, "w", encoding="utf-8") as f:
            for i in range(n):
                body = mpl.encode(mpl.mail_body(marker="bench-%d" % i))
                f.write("%s\tContent-Type: application/json\tAuthorization: Bearer %s\t%s\n"
                        % (mpl.MAIL_SEND_PATH, key, body.decode()))
        sim0 = self.st.sim_stats()
        # the endpoint alone, as the webhook stages hold the sink: the sender is held
        # while the requests are posted, so its work (PostgreSQL, sends) shares no core
        self.st.stack("stop", "sender", timeout=120)
        try:
            c0 = self.cpu()
            r = wrk(self.url, path, seconds, once=True)
            self.cpu_note("mail send", c0, self.cpu(), r["seconds"], r["ok"])
        finally:
            self.st.stack("start", "sender", timeout=120)
        req_s = r["ok"] / r["seconds"]
        # the sender's sends/s from that backlog: the simulator's accepted count until it
        # stops growing (or the window ends)
        # (from the first send: the restarted sender first joins its consumer group)
        t0 = time.monotonic()
        last, since, sends, first = None, t0, 0, None
        while time.monotonic() - t0 < window:
            s = self.st.sim_stats()
            sends = s.get("accepted", 0) - sim0.get("accepted", 0)
            now = time.monotonic()
            if sends != last:
                if first is None and sends > 0:
                    first = (now, sends)
                last, since = sends, now
            elif (first and now - since > 4) or sends >= r["ok"]:
                break
            time.sleep(0.25)
        send_s = (sends - first[1]) / (since - first[0]) if first and since > first[0] else 0.0
        # the rest of the backlog would share the later stages' cores: the sender is held
        # again (its peak RSS noted first; the table of peaks includes it)
        self.held_rss = [x for x in self.rss() if x[0] == "sender"]
        self.st.stack("stop", "sender", timeout=120)
        return req_s, r, send_s, sends

    def service_pids(self):
        pdir = os.path.join(self.st.run_dir, "pids")
        out = []
        for f in sorted(os.listdir(pdir)):
            if not f.endswith(".pid") or ".supervisor" in f:
                continue
            try:
                pid = int(open(os.path.join(pdir, f)).read().strip() or 0)
            except (OSError, ValueError):
                continue
            out.append((f[:-4], pid))
        return out + self.ng.pids()

    def cpu(self):
        """{service: CPU seconds} of every service process and its children."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, pid in self.service_pids():
            for p in [pid] + children(pid):
                try:
                    with open("/proc/%d/stat" % p) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick
                except (OSError, IndexError, ValueError):
                    pass
        return out

    def cpu_note(self, stage, before, after, seconds, events):
        """CPU share of each service during a stage (100% = one core) and CPU us/event."""
        d = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in after), reverse=True)
        parts = ["%s %.0f%%" % (k, 100 * v / seconds) for v, k in d if v / seconds >= 0.02]
        total = sum(v for v, _ in d)
        self.cpu_shares[stage] = {k: v / max(1, events) * 1e6 for v, k in d}
        self.notes.append("CPU during %s (%.1f s, %d events; 100%% = one core): %s; total %.0f%%"
                          " of %d cores, %.1f CPU-us per event" % (
                              stage, seconds, events, ", ".join(parts), 100 * total / seconds,
                              os.cpu_count(), total / max(1, events) * 1e6))

    def rss(self):
        out = []
        for name, pid in self.service_pids():
            for p in [pid] + children(pid):
                try:
                    with open("/proc/%d/status" % p) as f:
                        st = dict(ln.split(":", 1) for ln in f if ":" in ln)
                    out.append((name, p, st["Name"].strip(),
                                int(st.get("VmHWM", "0 kB").split()[0]) / 1024.0))
                except (OSError, KeyError, ValueError):
                    pass
        return out


def skip_backlog(st):
    """Moves the (held) sink group's committed offsets on the events topic to the end:
    joins the group (the dev broker takes commits from members only), commits the high
    watermarks of its assignment, leaves.  Returns the records skipped."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": st.vars["KAFKA_BROKERS"], "group.id": mpl.SINK_GROUP,
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    assigned = []
    try:
        c.subscribe([mpl.EVENTS_TOPIC], on_assign=lambda _c, parts: assigned.extend(parts))
        deadline = time.monotonic() + 60
        while not assigned and time.monotonic() < deadline:
            c.poll(0.2)
        if not assigned:
            raise RuntimeError("no assignment in the sink group to skip the backlog")
        parts = [tp.partition for tp in assigned]
        committed = {tp.partition: tp.offset for tp in c.committed(
            [TopicPartition(mpl.EVENTS_TOPIC, p) for p in parts], timeout=10)}
        offs, total = [], 0
        for p in parts:
            _, high = c.get_watermark_offsets(TopicPartition(mpl.EVENTS_TOPIC, p), timeout=10)
            total += high - max(0, committed.get(p, 0))
            offs.append(TopicPartition(mpl.EVENTS_TOPIC, p, high))
        c.commit(offsets=offs, asynchronous=False)
        return total
    finally:
        c.close()


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return []
    out = []
    for k in kids:
        out += [k] + children(k)
    return out


def hist_delta(a, b):
    d = sorted((le, b.get(le, 0) - a.get(le, 0)) for le in b)
    return d


def hist_quantile(d, q):
    """Linear interpolation inside the cumulative buckets (like histogram_quantile)."""
    if not d or d[-1][1] <= 0:
        return None
    total = d[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in d:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / max(1e-9, c - prev_c))
        prev_le, prev_c = le, c
    return prev_le


def hist_max(d):
    """The upper bound of the highest non-empty bucket."""
    prev = 0
    top = None
    for le, c in d:
        if c > prev:
            top = le
        prev = c
    return top


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if v >= 100:
        return "{:,.0f}".format(v)
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


# --- the run ------------------------------------------------------------------------------
def run(st, ng, args):
    b = Bench(st, ng, args)
    T = args.seconds
    smoke = args.smoke
    tgt_rss = 64.0

    # read API at N events (first: read_api's loader wants an empty events table)
    if not args.skip_read:
        ra = argparse.Namespace(events=args.read_events, messages=max(1000, args.read_events // 5),
                                days=45, requests=args.read_requests)
        log("read: loading %d events" % ra.events)
        read_api.load(st, ra)
        res = read_api.measure(st, ra)
        worst_s = max((t for n, t, _ in res if t and "stats" in n), key=lambda t: t[1], default=None)
        worst_m = max((t for n, t, _ in res if t and "messages" in n), key=lambda t: t[1],
                      default=None)
        for name, t in (("GET /v3/stats p99 (worst case), ms", worst_s),
                        ("GET /v3/messages p99 (worst case), ms", worst_m)):
            if t:
                b.add(name + " at %d events" % ra.events, t[1], "ms", target="< 50 ms",
                      met=t[1] < 50)
        b.read_rows = res
        b.read_events = ra.events

    # the same signed bodies for the references and the webhook
    reqfiles = {}
    counts = {1: 2000, 10: 1000, 100: 300, 1000: 40} if not smoke else \
        {1: 200, 10: 100, 100: 30, 1000: 4}
    ingest_bodies = {}
    batches = (100,) if smoke else BATCHES   # the smoke: the target's batch size only
    for batch in batches:
        bb = b.new_bodies()
        path = os.path.join(b.work, "ingest-%d.req" % batch)
        bb.write(path, mpl.WEBHOOK_PATH, batch, counts[batch])
        reqfiles[batch] = path
        ingest_bodies[batch] = bb
    log("refs: nginx return 204 and the FastCGI stub, %d s each" % args.ref_seconds)
    refs = b.http_refs(reqfiles, args.ref_seconds)

    # the ingest ceiling: the least CPU any event costs here, measured piece by piece on
    # the idle stack (mailpipe's own code, tests/bench/ingest_floor.c)
    fl = b.ingest_floor(reqfiles[100], 1 if smoke else 9)
    parts = [("the FastCGI stub's machine CPU (nginx, TLS, the stub, wrk)",
              b.stub_cpu_us.get(100, 0.0)),
             ("signature (%.0f us a batch)" % fl["verify_us_per_batch"],
              fl["verify_us_per_batch"] / fl["events_per_batch"]),
             ("parsing", fl["parse_us_per_event"]),
             ("producing (librdkafka)", fl["produce_client_us_per_msg"]),
             ("the broker", max(0.0, fl["broker_us_per_msg"]))]
    floor_us = sum(v for _, v in parts)
    ceiling = os.cpu_count() * 1e6 / floor_us
    stub100 = refs[("FastCGI stub", 100)]
    proven = ceiling < 0.5 * stub100
    b.add("  ingest ceiling, batches of 100 (the least CPU per event), events/s", ceiling,
          "ev/s", ref=stub100,
          target="< 50%: the target is out of reach here" if proven else None)
    b.figures["ingest_floor"] = (floor_us, parts, ceiling, stub100, proven)
    b.notes.append("ingest ceiling: every webhook event costs at least %.2f CPU-us here: %s;"
                   " %d cores / %.2f us = %s events/s, %.0f%% of the stub (%s events/s)%s"
                   % (floor_us, ", ".join("%s %.2f" % (n, v) for n, v in parts),
                      os.cpu_count(), floor_us, fmt(ceiling), 100 * ceiling / stub100,
                      fmt(stub100), ": 50% of the stub cannot be reached on this machine"
                      if proven else ""))

    # mail send, before the ingest stages: after them the dev broker still works through
    # what they left.  The sender goes on sending (the simulator's events go to the held
    # sink's skipped backlog), a load the later stages share.
    b.idle()
    st.wait_sim_quiet(60)
    req_s, mr, send_s, sends = b.mail(T, 6 if smoke else 25)
    b.add("POST /v3/mail/send, req/s", req_s, "req/s", target=">= 5,000 req/s", met=req_s >= 5000)
    b.add("sender sends/s to the simulator", send_s, "sends/s")
    if mr["bad"]:
        b.notes.append("mail send: %d non-2xx answers" % mr["bad"])

    # webhook ingest (cycling the bodies) with the sink held: the dev broker cannot hold
    # the backlog, so these records are skipped afterwards, not stored
    st.stack("stop", "sink", timeout=120)
    ingest, sent = {}, {}
    for batch in batches:
        c0 = b.cpu()
        r = wrk(b.url, reqfiles[batch], T if smoke else min(T, 8))
        ingest[batch] = r["received"] / r["seconds"]
        if batch == 100:
            b.cpu_note("webhook ingest, batches of 100", c0, b.cpu(), r["seconds"], r["received"])
        sent[batch] = r["sent"]
        if r["bad"] or r["timeout"]:
            b.notes.append("ingest batch %d: %d non-2xx, %d timeouts" % (batch, r["bad"], r["timeout"]))
        stub = refs[("FastCGI stub", batch)]
        b.add("webhook ingest, batches of %d, events/s" % batch, ingest[batch], "ev/s",
              ref=stub, target=">= 50% of stub" if batch == 100 else None,
              met=(ingest[batch] >= 0.5 * stub) if batch == 100 else None)
        b.add("  nginx return 204, batches of %d, events/s" % batch,
              refs[("nginx return 204", batch)], "ev/s")
    skipped = skip_backlog(st)
    st.stack("start", "sink", timeout=120)
    b.notes.append("ingest stages: the sink was held and their %d records skipped (the sink"
                   " group's offsets moved to the end): the dev broker trims each partition at"
                   " a few MB; correctness is checked on the e2e and paced stages" % skipped)

    # Kafka and Redis references
    sizes = ingest_bodies[100].events(50)
    kref = b.kafka_ref(sizes, min(T, 5))
    b.add("Kafka producer (idempotent, acks=all), msgs/s", kref, "msg/s")
    rref = b.redis_ref(20000 if smoke else 200000)
    for name, v in rref.items():
        b.add("redis-benchmark %s, req/s" % name, v, "req/s")

    # end to end, 1 sink
    log("e2e: batches of 100 at full speed, %d s (1 sink)" % T)
    rate1, r1, eb = b.e2e(T, ingest[100], "e2e 1 sink")
    cref, cref_idx, crows = b.copy_ref(eb)
    b.add("end-to-end into PostgreSQL (1 sink), rows/s", rate1, "rows/s", ref=cref,
          target=">= 60% of COPY", met=rate1 >= 0.6 * cref if cref else None)
    b.add("  (same, vs COPY into a logged table with the events indexes), rows/s", rate1,
          "rows/s", ref=cref_idx)
    if cref and cref_idx:
        b.add("  COPY into the logged table with the events indexes (the least a sink"
              " writes), rows/s", cref_idx, "rows/s", ref=cref,
              target="< 60%: the target is out of reach here" if cref_idx < 0.6 * cref
              else None)
    b.notes.append("COPY references: the %d rows of the e2e stage, one COPY, into a temp table"
                   " LIKE events (no indexes; the target's reference) and into a logged table"
                   " LIKE events INCLUDING INDEXES" % crows)

    # latency at 50% and 80%
    for pct in (50,) if smoke else (50, 80):
        d, achieved = b.paced(rate1 * pct / 100.0, T, "paced %d%%" % pct)
        p50, p99, mx = hist_quantile(d, 0.5), hist_quantile(d, 0.99), hist_max(d)
        tgt = "< 250 ms" if pct == 50 else None
        for q, v in (("p50", p50), ("p99", p99), ("max (bucket bound)", mx)):
            if v is None:
                continue
            b.add("POST-to-row %s at %d%% (%s ev/s), ms" % (q, pct, fmt(achieved)), v * 1000, "ms",
                  target=tgt if q == "p99" else None,
                  met=(v * 1000 < 250) if (q == "p99" and tgt) else None)

    # 2 sinks
    if not args.skip_sinks:
        st.stack("start", "sink-2", timeout=120)
        time.sleep(8)   # the group's rebalance
        rate2, _, _ = b.e2e(T, ingest[100], "e2e 2 sinks")
        b.add("end-to-end into PostgreSQL (2 sinks), rows/s", rate2, "rows/s", ref=rate1)

    # peak RSS
    rss = b.rss()
    running = {x[0] for x in rss}
    rss += [x for x in getattr(b, "held_rss", []) if x[0] not in running]
    b.rss_rows = rss
    mp = [x for x in rss if x[2] in ("ingest", "query", "sink", "sender")]
    if mp:
        worst = max(mp, key=lambda x: x[3])
        b.add("peak RSS, worst mailpipe process (%s), MB" % worst[0], worst[3], "MB",
              target="< 64 MB", met=all(x[3] < tgt_rss for x in mp))
    return b


def environment(st):
    env = read_api.environment(st)
    env["load"] = loadavg()
    return env


def report(b, env, args, started):
    now = datetime.datetime.now(UTC)
    commit = env["commit"].split()[0]
    lines = ["# mailpipe bench %s" % now.strftime("%Y-%m-%d %H:%M UTC"), "",
             "- mode: %s; %d s per stage; written by `tests/bench/bench.py`" % (
                 "smoke" if args.smoke else "full", args.seconds),
             "- commit %s; %s cores (%s), %s RAM; PostgreSQL %s; Linux %s" % (
                 env["commit"], env["cores"], env["cpu"], env["memory"], env["postgres"],
                 env["kernel"]),
             "- load average at start %s, at end %s (other jobs shared the machine)" % (
                 started, loadavg()),
             "",
             "| figure | value | reference | ratio | target | met? | load |",
             "|---|---:|---:|---:|---|---|---|"]
    for fig, v, unit, ref, ratio, tgt, met, la in b.rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            fig, fmt(v), fmt(ref), "" if ratio is None else "%.0f%%" % (ratio * 100),
            tgt or "", "" if met is None else ("yes" if met else "**no**"), la))
    lines += ["", "Correctness (rows stored vs events accepted with 2xx):", "",
              "| stage | rows | accepted | distinct sg_event_id | ok |", "|---|---:|---:|---:|---|"]
    for name, rows, acc, dist, ok in b.checks:
        lines.append("| %s | %d | %d | %d | %s |" % (name, rows, acc, dist,
                                                     "yes" if ok else "**no**"))
    if getattr(b, "rss_rows", None):
        lines += ["", "Peak RSS (VmHWM) per process:", "", "| service | pid | program | MB |",
                  "|---|---:|---|---:|"]
        for name, pid, prog, mb in b.rss_rows:
            lines.append("| %s | %d | %s | %.1f |" % (name, pid, prog, mb))
    if getattr(b, "read_rows", None):
        lines += ["", "Read API at %d events (%d requests per case):" % (
            b.read_events, args.read_requests), "",
            "| request | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|"]
        for name, t, note in b.read_rows:
            if t:
                lines.append("| %s | %.1f | %.1f | %.1f |" % (name.replace("|", "\\|"), *t))
    if b.notes:
        lines += ["", "Notes:", ""] + ["- " + n for n in b.notes]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, "bench-%s-%s%s.md" % (
        now.strftime("%Y-%m-%d"), commit, "-smoke" if args.smoke else ""))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("written to %s" % os.path.relpath(path, REPO))


def main():
    global CONNS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="every stage briefly (CI)")
    ap.add_argument("--seconds", type=int, help="seconds per load stage")
    ap.add_argument("--ref-seconds", type=int, help="seconds per reference run")
    ap.add_argument("--read-events", type=int)
    ap.add_argument("--read-requests", type=int)
    ap.add_argument("--skip-read", action="store_true")
    ap.add_argument("--skip-sinks", action="store_true", help="no 2-sink stage")
    ap.add_argument("--conns", type=int, default=CONNS,
                    help="wrk connections per HTTP stage (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    CONNS = args.conns
    if args.smoke:
        args.skip_sinks = True   # the smoke: one sink
    if args.seconds is None:
        args.seconds = 1 if args.smoke else 15
    if args.ref_seconds is None:
        args.ref_seconds = 1 if args.smoke else 5
    if args.read_events is None:
        args.read_events = 10000 if args.smoke else 1000000
    if args.read_requests is None:
        args.read_requests = 5 if args.smoke else 200   # p99 wants 100+ samples
    if args.smoke:
        args.results = os.path.join(tempfile.gettempdir(), "mailpipe-bench-smoke") \
            if args.results == os.path.join(HERE, "results") else args.results
    for tool in ("wrk", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit("bench: '%s' is missing: run ops/install-deps" % tool)
    started = loadavg()
    run_dir = tempfile.mkdtemp(prefix="mailpipe-bench-")
    log("starting a stack in %s (load %s)" % (run_dir, started))
    st = ng = None
    rc = 1
    try:
        st = start_stack(run_dir, 1 if args.skip_sinks else 2)
        if not args.skip_sinks:
            st.stack("stop", "sink-2", timeout=120)
        ng = BenchNginx(st)
        ng.start()
        b = run(st, ng, args)
        report(b, environment(st), args, started)
        bad = [c for c in b.checks if not c[4]]
        if bad:
            print("bench: correctness FAILED: %s" % ", ".join(c[0] for c in bad))
        else:
            print("bench: correctness OK (%d stages)" % len(b.checks))
        rc = 1 if bad else 0
    finally:
        if ng:
            ng.stop()
        if st and not args.keep:
            for title, text in mpl.stop_private_stack(st):
                log("%s: %s" % (title, text))
        elif st:
            print("stack left running in %s" % run_dir)
    return rc


if __name__ == "__main__":
    sys.exit(main())
