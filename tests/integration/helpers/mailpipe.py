"""Helpers for the integration tests: a private stack, signed webhook posts,
database and Kafka probes.

Everything here talks to the stack the way a user or an operator would:
HTTPS through nginx, SQL as the admin role, the Kafka protocol, and the
embedded broker's control socket.
"""

import base64
import copy
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import psycopg2
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIG_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TS_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
WEBHOOK_PATH = "/webhooks/sendgrid"
EVENTS_TOPIC = "sendgrid.events"
DLQ_TOPIC = "sendgrid.events.dlq"
SINK_GROUP = "mailpipe-sink"
SERVICES = ("postgres", "redis", "kafka", "ingest", "query", "sink", "nginx")

# settings that make the test stack fast and its failures quick to observe
STACK_ENV = {
    "MAILPIPE_KAFKA_FETCH_WAIT_MAX_MS": "10",
    "MAILPIPE_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "MAILPIPE_INGEST_DEADLINE_MS": "3000",
    "MAILPIPE_SINK_BATCH_MS": "20",
    # the sender (issue 3): quick retries, and a time-out plus grace short enough that
    # the "accepted, then no answer" case settles within a test
    "MAILPIPE_SENDER_RETRY_BASE_MS": "200",
    "MAILPIPE_SENDER_RETRY_MAX_MS": "2000",
    "MAILPIPE_SENDGRID_TIMEOUT_MS": "3000",
    "MAILPIPE_SENDER_AMBIGUOUS_GRACE_SECONDS": "12",
    # GET /metrics: pushes every second, so a killed process is stale after 3 s
    "MAILPIPE_METRICS_PUSH_SECONDS": "1",
}
INGEST_DEADLINE_S = int(STACK_ENV["MAILPIPE_INGEST_DEADLINE_MS"]) / 1000

# make_event(key=DROP) removes the key from the event
DROP = object()


def wait_until(fn, timeout=30.0, interval=0.05, desc=None):
    """Call fn until it returns a truthy value; return that value.

    Raises AssertionError after timeout seconds, quoting desc and fn's last
    result (or exception) so the failure says what was being waited for.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - report it at the deadline
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                "timed out after %.1fs waiting for %s (last: %r)"
                % (timeout, desc or getattr(fn, "__name__", "condition"), last))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def parse_env_file(path):
    """KEY=VALUE lines (values may be shell-quoted; # comments ignored)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):]
            key, sep, value = line.partition("=")
            if not sep:
                continue
            try:
                parts = shlex.split(value)
                value = parts[0] if len(parts) == 1 else value
            except ValueError:
                pass
            out[key.strip()] = value
    return out


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sign_with(key, body, timestamp):
    """SendGrid's scheme: ECDSA P-256 / SHA-256 over timestamp + raw body,
    DER signature, standard base64."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    der = key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode("ascii")


def expected_category(value):
    """The text[] the category column should hold for a posted category."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def expected_event_time(ts):
    """event_time for a SendGrid timestamp: int or numeric string, seconds or
    13-digit milliseconds."""
    n = int(ts)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    if n >= 10**12:
        return epoch + datetime.timedelta(milliseconds=n)
    return epoch + datetime.timedelta(seconds=n)


def assert_json_error(resp, status):
    """resp has the given status and the spec's error body
    {"errors":[{"message":"...","field":<string|null>,"help":null}]}."""
    assert resp.status_code == status, (
        "expected %d, got %d: %r" % (status, resp.status_code, resp.text[:500]))
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), (
        "error %d has Content-Type %r, body %r" % (status, ctype, resp.text[:500]))
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) \
        and body["errors"], "bad error body: %r" % body
    for err in body["errors"]:
        assert isinstance(err.get("message"), str) and err["message"], err
        assert "field" in err and (err["field"] is None or isinstance(err["field"], str)), err
        assert "help" in err and err["help"] is None, err
    return body


def start_private_stack(repo, prefix="mailpipe-", env_overrides=None, timeout=300,
                        run_dir=None, test_env=True, ready="/healthz"):
    """Start a private stack: `ops/stack up` in a fresh run dir (or run_dir) on
    free loopback ports, with STACK_ENV (the tests' short time-outs; test_env=False
    keeps the production defaults, for benchmarks) and then env_overrides over this
    process's environment, and wait until GET ready answers 200. Returns the Stack;
    stop it with stop_private_stack. If it does not come up, it is stopped (its run
    dir kept) and StackStartError says why, with the services' log tails."""
    if run_dir is None:
        run_dir = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(run_dir, exist_ok=True)
    os.chmod(run_dir, 0o755)    # postgres runs as its own OS user and must traverse it
    https_port, pg_port, redis_port, sim_port = free_ports(4)
    env = dict(os.environ)
    if test_env:
        env.update(STACK_ENV)
    env.update({
        "MAILPIPE_RUN_DIR": run_dir,
        "MAILPIPE_HTTPS_PORT": str(https_port),
        "MAILPIPE_PG_PORT": str(pg_port),
        "MAILPIPE_REDIS_PORT": str(redis_port),
        "MAILPIPE_SIM_PORT": str(sim_port),     # the SendGrid simulator (nginx)
    })
    env.update(env_overrides or {})
    # ops/stack's default, spelled out: the benchmarks find their own binaries there
    bin_dir = env.get("MAILPIPE_BIN_DIR") or os.path.join(repo, "build")
    env["MAILPIPE_BIN_DIR"] = os.path.join(repo, bin_dir)   # unchanged when absolute
    st = Stack(repo, run_dir, env)
    try:
        st.stack("up", timeout=timeout)
        st.load_env()
        wait_until(lambda: st.request("GET", ready, timeout=5).status_code == 200,
                   timeout=60, desc="GET %s == 200 after 'ops/stack up'" % ready)
    except Exception as e:
        tails = st.log_tails()
        notes = stop_private_stack(st, keep=True)
        raise StackStartError("the private stack did not start: %s\n%s\n%s" % (
            e, "\n".join("%s: %s" % n for n in notes), tails)) from e
    except BaseException:
        stop_private_stack(st, keep=True)
        raise
    return st


def stop_private_stack(st, keep=False):
    """`ops/stack down`, then remove the run dir unless keep or MAILPIPE_KEEP_RUN=1.
    Returns what is worth reporting as (title, text) pairs: a failed down, a
    kept run dir."""
    notes = []
    try:
        down = st.stack("down", timeout=180, check=False)
        if down.returncode != 0:
            notes.append(("ops/stack down failed",
                          "exit %d:\n%s" % (down.returncode, down.stdout)))
    except Exception as e:  # noqa: BLE001 - still remove the run dir
        notes.append(("ops/stack down failed", repr(e)))
    if keep or os.environ.get("MAILPIPE_KEEP_RUN") == "1":
        notes.append(("mailpipe run dir kept", st.run_dir))
    else:
        shutil.rmtree(st.run_dir, ignore_errors=True)
    return notes



def children_of(pid):
    """Pids whose parent is pid (from /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, encoding="ascii", errors="replace") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return out

class StackStartError(RuntimeError):
    """start_private_stack: the stack did not come up."""


class Stack:
    """A private mailpipe stack started with ops/stack in its own run dir."""

    def __init__(self, repo, run_dir, env):
        self.repo = repo
        self.run_dir = run_dir
        self.env = env          # environment for ops/stack and its services
        self.vars = {}          # stack.env
        self._key = None
        self._local = threading.local()
        self.secrets = set()    # API keys used by the tests: never in any log

    # --- ops/stack -------------------------------------------------------
    def stack(self, *args, timeout=180, check=True):
        """Run ops/stack ARGS with the stack's environment; return the
        CompletedProcess (stdout and stderr merged)."""
        cmd = [os.path.join(self.repo, "ops", "stack")] + list(args)
        proc = subprocess.run(cmd, cwd=self.repo, env=self.env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s exited %d:\n%s"
                                 % (" ".join(cmd), proc.returncode, proc.stdout))
        return proc

    def load_env(self):
        self.vars = parse_env_file(os.path.join(self.run_dir, "stack.env"))
        missing = [k for k in ("MAILPIPE_URL", "MAILPIPE_CA", "DATABASE_URL",
                               "REDIS_URL", "KAFKA_BROKERS", "KAFKA_CONTROL",
                               "WEBHOOK_SIGNING_KEY") if not self.vars.get(k)]
        assert not missing, "stack.env lacks %s: %r" % (missing, self.vars)

    def pid_of(self, svc):
        """PID in <run>/pids/<svc>.pid, or None if there is no such file."""
        try:
            with open(os.path.join(self.run_dir, "pids", svc + ".pid"),
                      encoding="ascii") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def postmaster(self):
        """The pid of the postmaster this stack started, checked to lead its own process
        group (the supervisor runs it under setsid) and to serve this run dir's data."""
        pid = self.wait_pid("postgres")
        assert os.getpgid(pid) == pid, "postgres %d does not lead its process group" % pid
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        assert os.path.join(self.run_dir, "pg").encode() in argv, \
            "pid %d is not this stack's postmaster: %r" % (pid, argv)
        return pid

    def signal_postgres(self, sig):
        """sig (SIGSTOP or SIGCONT) to this stack's PostgreSQL: the postmaster and each of
        its children with their process groups (every PostgreSQL child calls setsid(), so
        killpg(postmaster) alone would leave the backends running).  SIGSTOP goes to the
        postmaster first (a stopped postmaster forks nothing new), SIGCONT to it last.
        Returns (postmaster, children)."""
        pm = self.postmaster()
        kids = children_of(pm)
        for pid in ([pm] + kids) if sig == signal.SIGSTOP else (kids + [pm]):
            try:
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pm, kids

    def wait_pid(self, svc, not_pid=None, timeout=30):
        """Wait until pids/<svc>.pid names a live process other than not_pid."""
        def ok():
            pid = self.pid_of(svc)
            return pid if pid and pid != not_pid and pid_alive(pid) else None
        return wait_until(ok, timeout, desc="a live %s process (not %s)" % (svc, not_pid))

    def log_tails(self, lines=60):
        logs = os.path.join(self.run_dir, "logs")
        out = []
        try:
            names = sorted(os.listdir(logs))
        except OSError:
            return "(no log directory %s)" % logs
        for name in names:
            path = os.path.join(logs, name)
            try:
                with open(path, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - 256 * 1024))
                    tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
            except OSError as e:
                tail = ["(cannot read: %s)" % e]
            out.append("----- %s (last %d lines) -----" % (path, len(tail)))
            out.extend(tail)
        return "\n".join(out)

    # --- HTTP ------------------------------------------------------------
    @property
    def url(self):
        return self.vars["MAILPIPE_URL"].rstrip("/")

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            self._local.session = s
        return s

    def request(self, method, path, timeout=30, **kw):
        # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE
        kw.setdefault("verify", self.vars["MAILPIPE_CA"])
        return self._session().request(method, self.url + path, timeout=timeout, **kw)

    def signing_key(self):
        if self._key is None:
            with open(self.vars["WEBHOOK_SIGNING_KEY"], "rb") as f:
                self._key = serialization.load_pem_private_key(f.read(), None)
        return self._key

    def sign(self, body, timestamp):
        """base64 DER signature of timestamp + body with the stack's key."""
        return sign_with(self.signing_key(), body, timestamp)

    def post_webhook(self, body, sign=True, ts=None, headers=None, key=None,
                     timeout=30, path=WEBHOOK_PATH):
        """POST body (bytes, str, or a list/dict that is JSON-encoded) to the
        webhook, signed with the stack's key (or `key`) unless sign=False.
        headers are added last: a value of None removes that header."""
        if not isinstance(body, (bytes, str)):
            body = encode(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if ts is None:
            ts = str(int(time.time()))
        h = {"Content-Type": "application/json"}
        if sign:
            h[TS_HEADER] = ts
            h[SIG_HEADER] = (sign_with(key, body, ts) if key is not None
                             else self.sign(body, ts))
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        return self.request("POST", path, data=body, headers=h, timeout=timeout)

    # --- PostgreSQL ------------------------------------------------------
    def db(self):
        """A new autocommit connection as the admin role (caller closes)."""
        conn = psycopg2.connect(self.vars["DATABASE_URL"], connect_timeout=5)
        conn.autocommit = True
        return conn

    def query(self, sql, *args):
        """Rows of one statement, on a fresh connection (survives restarts)."""
        conn = self.db()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def count_events(self, tag):
        """(rows, distinct sg_event_id) in events whose id starts with tag-."""
        return self.query(
            "select count(*), count(distinct sg_event_id) from events"
            " where starts_with(sg_event_id, %s)", tag + "-")[0]

    def event_rows(self, tag):
        """{sg_event_id: [row dict, ...]} for this tag's events."""
        conn = self.db()
        try:
            with conn.cursor() as cur:
                cur.execute("select * from events where starts_with(sg_event_id, %s)",
                            (tag + "-",))
                names = [d[0] for d in cur.description]
                out = {}
                for row in cur.fetchall():
                    r = dict(zip(names, row))
                    out.setdefault(r["sg_event_id"], []).append(r)
                return out
        finally:
            conn.close()

    def dead_letters(self, marker):
        """dead_letters rows (topic, error, payload text) whose payload holds marker."""
        rows = self.query(
            "select topic, error, payload from dead_letters"
            " where position(convert_to(%s, 'UTF8') in payload) > 0", marker)
        return [(t, e, bytes(p).decode("utf-8", "replace") if p is not None else None)
                for t, e, p in rows]

    def wait_rows(self, tag, n, timeout=60):
        """Wait until this tag has at least n event rows; return the count."""
        def enough():
            rows = self.count_events(tag)[0]
            if rows < n:
                raise AssertionError("%d rows so far" % rows)
            return rows
        return wait_until(enough, timeout, interval=0.1,
                          desc="%d event rows for %s" % (n, tag))

    # --- Kafka -----------------------------------------------------------
    def kafka_ctl(self, cmd, timeout=10):
        """One command to the embedded broker's control socket; its reply line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.vars["KAFKA_CONTROL"])
            s.sendall(cmd.encode("ascii") + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()

    def _consumer(self, group):
        from confluent_kafka import Consumer
        return Consumer({
            "bootstrap.servers": self.vars["KAFKA_BROKERS"],
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            "socket.timeout.ms": 10000,
        })

    def _partitions(self, consumer, topic):
        md = consumer.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise AssertionError("topic %r not available: %r" % (topic, t and t.error))
        return sorted(t.partitions)

    def sink_lag(self):
        """{partition: high watermark - committed offset} of the sink's
        consumer group on the events topic (committed < 0 counts as 0)."""
        from confluent_kafka import TopicPartition
        c = self._consumer(SINK_GROUP)
        try:
            parts = [TopicPartition(EVENTS_TOPIC, p)
                     for p in self._partitions(c, EVENTS_TOPIC)]
            committed = c.committed(parts, timeout=10)
            lag = {}
            for tp in committed:
                _, high = c.get_watermark_offsets(
                    TopicPartition(EVENTS_TOPIC, tp.partition), timeout=10)
                lag[tp.partition] = high - max(tp.offset, 0)
            return lag
        finally:
            c.close()

    def wait_sink_idle(self, timeout=60):
        """Wait until the sink group has committed every record of the events
        topic: the sink commits offsets only after its database commit, so
        whatever was acknowledged before this call has been written by now."""
        def idle():
            lag = self.sink_lag()
            return all(v <= 0 for v in lag.values()) and lag
        return wait_until(idle, timeout, interval=0.2,
                          desc="sink group %r to catch up on %r" % (SINK_GROUP, EVENTS_TOPIC))

    def kafka_find(self, needle, topics=(EVENTS_TOPIC, DLQ_TOPIC), timeout=30):
        """Records (topic, partition, offset) in topics whose key or value
        contains needle (bytes or str), scanning from low to high watermark."""
        return [(r["topic"], r["partition"], r["offset"])
                for r in self.kafka_records(needle, topics, timeout)]

    # --- mail send path (issue 3) ------------------------------------------
    @property
    def api_key(self):
        """The dev API key (every scope) that `ops/stack up` made."""
        key = self.vars.get("MAILPIPE_API_KEY")
        assert key, "stack.env has no MAILPIPE_API_KEY: %r" % sorted(self.vars)
        self.secrets.add(key)
        return key

    @property
    def sim_url(self):
        url = self.vars.get("SENDGRID_SIM_URL")
        assert url, "stack.env has no SENDGRID_SIM_URL: %r" % sorted(self.vars)
        return url.rstrip("/")

    @property
    def sim_key(self):
        return self.vars.get("SENDGRID_SIM_API_KEY") or "SG.mailpipe-simulator"

    def send_mail(self, body, key=None, headers=None, timeout=30):
        """POST body (a dict, JSON-encoded; or bytes/str as they are) to
        /v3/mail/send with `Authorization: Bearer KEY` (the dev key unless
        key is given; key=False sends no Authorization header). headers are
        added last: a value of None removes that header."""
        if not isinstance(body, (bytes, str)):
            body = encode(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        h = {"Content-Type": "application/json"}
        if key is None:
            key = self.api_key
        if key is not False:
            if key.startswith("mp_"):
                self.secrets.add(key)
            h["Authorization"] = "Bearer " + key
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        return self.request("POST", MAIL_SEND_PATH, data=body, headers=h, timeout=timeout)

    def send_ok(self, body, key=None, headers=None):
        """send_mail() that must answer 202 with an X-Message-Id; returns the id."""
        r = self.send_mail(body, key=key, headers=headers)
        assert r.status_code == 202, "expected 202, got %d: %r" % (r.status_code, r.text[:500])
        mid = r.headers.get("X-Message-Id", "")
        assert ULID_RE.match(mid), "X-Message-Id %r is not a ULID" % mid
        return mid

    # the simulator, over HTTPS through nginx like the sender reaches it
    def sim_request(self, method, path, timeout=30, **kw):
        kw.setdefault("verify", self.vars["MAILPIPE_CA"])
        h = {"Authorization": "Bearer " + self.sim_key}
        h.update(kw.pop("headers", {}) or {})
        return self._session().request(method, self.sim_url + path, timeout=timeout,
                                       headers=h, **kw)

    def sim_messages(self, message_id):
        """The simulator's {"count":N,"x_message_ids":[...]} for a mailpipe id."""
        r = self.sim_request("GET", "/sim/messages",
                             params={"mailpipe_message_id": message_id})
        assert r.status_code == 200, "GET /sim/messages: %d %r" % (r.status_code, r.text[:300])
        return r.json()

    def sim_count(self, message_id):
        """How many times the simulator accepted a mail carrying message_id."""
        return self.sim_messages(message_id)["count"]

    def sim_stats(self):
        r = self.sim_request("GET", "/sim/stats")
        assert r.status_code == 200, "GET /sim/stats: %d %r" % (r.status_code, r.text[:300])
        return r.json()

    def wait_sim_quiet(self, timeout=30):
        """Wait until the simulator has posted every event it generated: opens and
        clicks come up to about a second after delivered, so a test comparing counts
        must not start before they are all out (then wait_sink_idle for the rows)."""
        def quiet():
            ev = self.sim_stats()["events"]
            return ev["queued"] == 0 and ev["pending"] == 0
        return wait_until(quiet, timeout, interval=0.1,
                          desc="the simulator to post every generated event")

    def sim_faults(self, **fault):
        """POST /sim/faults with fault as the JSON body; returns the knobs."""
        r = self.sim_request("POST", "/sim/faults", json=fault)
        assert r.status_code == 200, "POST /sim/faults %r: %d %r" % (
            fault, r.status_code, r.text[:300])
        return r.json()

    def sim_clear(self):
        return self.sim_faults(clear=True)

    # messages and their events
    def message(self, message_id):
        """The messages row of message_id as a dict, or None."""
        conn = self.db()
        try:
            with conn.cursor() as cur:
                cur.execute("select * from messages where message_id = %s", (message_id,))
                row = cur.fetchone()
                if row is None:
                    return None
                return dict(zip([d[0] for d in cur.description], row))
        finally:
            conn.close()

    def wait_message(self, message_id, pred, timeout=20, desc=None):
        """Wait until message_id's row exists and pred(row) is true; return the row."""
        last = {}

        def ok():
            row = self.message(message_id)
            last["row"] = row
            return row if row is not None and pred(row) else None
        try:
            return wait_until(ok, timeout, interval=0.1, desc=desc or "message %s" % message_id)
        except AssertionError as e:
            row = last.get("row")
            brief = None if row is None else {k: row.get(k) for k in (
                "status", "attempts", "last_error", "sendgrid_message_id", "sent_at")}
            raise AssertionError("%s; row: %r" % (e, brief)) from None

    def wait_status(self, message_id, statuses, timeout=20):
        """Wait until messages.status of message_id is one of statuses."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        return self.wait_message(message_id, lambda r: r["status"] in statuses, timeout,
                                 "message %s to reach status %s" % (message_id, "|".join(statuses)))

    def message_events(self, message_id):
        """[(event, email, sg_event_id, sg_message_id)] of events.message_id = message_id."""
        return self.query(
            "select event, email, sg_event_id, sg_message_id from events"
            " where message_id = %s order by event_time, sg_event_id", message_id)

    def wait_events(self, message_id, names, timeout=20):
        """Wait until events hold every event name in names for message_id."""
        def ok():
            have = {r[0] for r in self.message_events(message_id)}
            missing = set(names) - have
            if missing:
                raise AssertionError("have %s, missing %s" % (sorted(have), sorted(missing)))
            return self.message_events(message_id)
        return wait_until(ok, timeout, interval=0.1,
                          desc="events %s for message %s" % (sorted(names), message_id))

    def messages_by_marker(self, marker):
        """messages rows whose request has custom_args.test_marker = marker."""
        return self.query(
            "select message_id, status from messages"
            " where request->'custom_args'->>'test_marker' = %s", marker)

    # mailpipectl, Redis, logs
    def mailpipectl(self, *args, check=True, timeout=60):
        """Run build/mailpipectl ARGS against the stack's database and Redis;
        the CompletedProcess (stdout and stderr apart)."""
        bin_dir = self.env.get("MAILPIPE_BIN_DIR") or os.path.join(self.repo, "build")
        env = dict(self.env)
        env["MAILPIPE_DATABASE_URL"] = self.vars["DATABASE_URL"]
        env["MAILPIPE_REDIS_URL"] = self.vars["REDIS_URL"]
        env["MAILPIPE_KAFKA_BROKERS"] = self.vars["KAFKA_BROKERS"]
        cmd = [os.path.join(bin_dir, "mailpipectl")] + list(args)
        proc = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s exited %d:\nstdout: %s\nstderr: %s" % (
                " ".join(cmd[:3]), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def create_api_key(self, name, scopes):
        """`mailpipectl apikey create`: (key, key_id). The key is remembered as a
        secret that no log may hold."""
        proc = self.mailpipectl("apikey", "create", "--name", name, "--scopes", scopes)
        lines = [l for l in proc.stdout.splitlines() if l.strip()]
        assert len(lines) == 1 and API_KEY_RE.match(lines[0]), (
            "apikey create printed %r on stdout (expected the key alone)" % proc.stdout)
        key = lines[0].strip()
        self.secrets.add(key)
        m = re.search(r"\bid=(\d+)", proc.stderr)
        assert m, "apikey create said no id on stderr: %r" % proc.stderr
        assert key not in proc.stderr, "apikey create printed the key on stderr too"
        return key, int(m.group(1))

    def wait_key_loaded(self, key, timeout=20):
        """Wait until ingest knows key (its periodic refresh): a sandbox send is
        no longer 401. Returns that answer."""
        body = mail_body(sandbox=True)

        def known():
            r = self.send_mail(body, key=key)
            return [r] if r.status_code != 401 else None   # a 4xx Response is falsy
        return wait_until(known, timeout, interval=0.2, desc="ingest to load a new API key")[0]

    def redis(self):
        import redis
        return redis.Redis.from_url(self.vars["REDIS_URL"], decode_responses=True,
                                    socket_timeout=10)

    def logs_containing(self, needle):
        """Files under <run>/logs whose bytes contain needle."""
        if isinstance(needle, str):
            needle = needle.encode("utf-8")
        found = []
        for root, _, files in os.walk(os.path.join(self.run_dir, "logs")):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        if needle in f.read():
                            found.append(path)
                except OSError:
                    pass
        return found

    # Kafka
    def kafka_records(self, needle, topics, timeout=30):
        """Records of topics whose key or value contains needle (None: every
        record), up to each partition's end when the scan starts, as dicts
        (topic, partition, offset, timestamp ms, key, value, headers {name: str})."""
        from confluent_kafka import TopicPartition, KafkaError
        if isinstance(needle, str):
            needle = needle.encode("utf-8")
        c = self._consumer("mailpipe-test-scan-" + uuid.uuid4().hex)
        found = []
        try:
            assign, ends = [], {}
            for topic in topics:
                for p in self._partitions(c, topic):
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    if high > low:
                        assign.append(TopicPartition(topic, p, low))
                        ends[(topic, p)] = high
            if not assign:
                return found
            c.assign(assign)
            deadline = time.monotonic() + timeout
            while ends and time.monotonic() < deadline:
                for m in c.consume(num_messages=1000, timeout=0.1):
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise AssertionError("kafka scan: %s" % m.error())
                    k = (m.topic(), m.partition())
                    if k not in ends or m.offset() >= ends[k]:
                        continue    # produced after the scan began
                    if (needle is None or needle in (m.value() or b"")
                            or needle in (m.key() or b"")):
                        found.append({
                            "topic": m.topic(), "partition": m.partition(),
                            "offset": m.offset(), "timestamp": m.timestamp()[1],
                            "key": (m.key() or b"").decode("utf-8", "replace"),
                            "value": (m.value() or b"").decode("utf-8", "replace"),
                            "headers": {n: (v or b"").decode("utf-8", "replace")
                                        for n, v in (m.headers() or [])},
                        })
                    if m.offset() + 1 >= ends[k]:
                        del ends[k]
            assert not ends, "kafka scan did not reach the end of %r" % ends
            return found
        finally:
            c.close()

    def sender_lag(self):
        """Records of mail.requests the sender group has not committed yet."""
        from confluent_kafka import TopicPartition
        c = self._consumer(SENDER_GROUP)
        try:
            parts = [TopicPartition(MAIL_TOPIC, p) for p in self._partitions(c, MAIL_TOPIC)]
            lag = 0
            for tp in c.committed(parts, timeout=10):
                low, high = c.get_watermark_offsets(TopicPartition(MAIL_TOPIC, tp.partition),
                                                    timeout=10)
                lag += high - (tp.offset if tp.offset >= 0 else low)
            return lag
        finally:
            c.close()

    def wait_sender_idle(self, timeout=60):
        """Wait until the sender has no record of mail.requests left to work on
        and nothing on its retry schedule: no send of an earlier test can take
        a fault the next test arms."""
        r = self.redis()

        def idle():
            lag = self.sender_lag()
            due = r.zcard(REDIS_PREFIX + "retry")
            if lag or due:
                raise AssertionError("lag %d, %d on the retry schedule" % (lag, due))
            return True
        return wait_until(idle, timeout, interval=0.2, desc="the sender to be idle")


def encode(obj):
    """JSON bytes as SendGrid sends them (UTF-8, no ASCII escaping)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def new_event(tag, base=None, **overrides):
    """A realistic `delivered` event with a unique sg_event_id "<tag>-<uuid>".

    base: a dict merged first (for keys that are not identifiers, e.g.
    "smtp-id"); overrides: keyword fields; a value of DROP removes the key.
    """
    xid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
    ev = {
        "email": "alice@example.com",
        "timestamp": int(time.time()),
        "smtp-id": "<%s@ismtpd0001p1lon1.sendgrid.net>" % xid,
        "event": "delivered",
        "category": ["newsletter"],
        "sg_event_id": "%s-%s" % (tag, uuid.uuid4().hex),
        "sg_message_id": "%s.filterdrecv-p3las1-5bf4e9c5b7-8vx9q-18-5F2B0A1B-6.0" % xid,
        "response": "250 OK ",
        "tls": 1,
        "ip": "168.1.1.1",
    }
    for k, v in copy.deepcopy(base or {}).items():
        ev[k] = v
    for k, v in overrides.items():
        ev[k] = v
    return {k: v for k, v in ev.items() if v is not DROP}


def assert_accepted(resp, received, dead_lettered=0):
    """resp is the webhook's 200 {"received":N,"published":P,"dead_lettered":D}."""
    assert resp.status_code == 200, (
        "expected 200, got %d: %r" % (resp.status_code, resp.text[:500]))
    body = resp.json()
    assert body.get("received") == received, body
    assert body.get("dead_lettered") == dead_lettered, body
    # the spec leaves open whether dead-lettered events count as published
    # (to the DLQ topic); both readings are accepted
    assert body.get("published") in (received - dead_lettered, received), body
    return body


# --- mail send path (issue 3) ----------------------------------------------

MAIL_SEND_PATH = "/v3/mail/send"
MAIL_TOPIC = "mail.requests"
MAIL_DLQ_TOPIC = "mail.requests.dlq"
SENDER_GROUP = "mailpipe-sender"
SENDGRID_TIMEOUT_S = int(STACK_ENV["MAILPIPE_SENDGRID_TIMEOUT_MS"]) / 1000
AMBIGUOUS_GRACE_S = int(STACK_ENV["MAILPIPE_SENDER_AMBIGUOUS_GRACE_SECONDS"])
REDIS_PREFIX = "mailpipe:"
INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
API_KEY_RE = re.compile(r"^mp_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$")
# messages.status after SendGrid took the mail (rank 20..90; not failed/suppressed)
SENT_OR_BEYOND = ("sent", "processed", "deferred", "delivered", "open", "click",
                  "group_resubscribe", "group_unsubscribe", "unsubscribe", "spamreport",
                  "bounce", "blocked", "dropped")
DELIVERED_OR_BEYOND = ("delivered", "open", "click")


def unique_address(prefix="", domain="example.com"):
    """A recipient no other test uses; prefix picks the simulator's outcome
    (bounce+, spam+, defer+, ...)."""
    return "%st%s@%s" % (prefix, uuid.uuid4().hex[:16], domain)


def mail_body(to=None, marker=None, sandbox=False, **top):
    """A valid v3 Mail Send body: to is an address or a list of them (a fresh
    address by default); marker goes into custom_args.test_marker; sandbox
    sets mail_settings.sandbox_mode.enable; top adds or replaces top-level keys."""
    if to is None:
        to = unique_address()
    if isinstance(to, str):
        to = [to]
    body = {
        "personalizations": [{"to": [{"email": a} for a in to]}],
        "from": {"email": "sender@example.com", "name": "mailpipe tests"},
        "subject": "mailpipe integration test",
        "content": [{"type": "text/plain", "value": "Hello from the mailpipe tests."}],
    }
    if marker is not None:
        body["custom_args"] = {"test_marker": marker}
    if sandbox:
        body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    body.update(copy.deepcopy(top))
    return body
