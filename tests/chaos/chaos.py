#!/usr/bin/python3
"""make chaos: break a private mailpipe stack on purpose while it carries a steady load,
and check that nothing accepted is lost or duplicated.

    tests/chaos/chaos.py [--short] [--only NAME,...] [--out FILE] [--keep]

It starts its own stack (ops/stack up in a fresh run dir on free loopback ports, like the
integration tests), runs two load threads (signed webhook batches of 20 events; mails
through POST /v3/mail/send to plain recipients that the SendGrid simulator delivers) and
applies the scenarios one at a time: kill -9 of ingest, sink, sender and the simulator,
all Kafka brokers down, injected produce errors, PostgreSQL frozen with SIGSTOP, Redis
restarted (AOF) and emptied (FLUSHALL), nginx reloaded. After each one it waits until the
pipeline has caught up, stops the load, and checks exactly:

  events  every event of a batch answered 2xx is in `events` exactly once (counted per
          sg_event_id); no event posted in the scenario is there twice;
  mails   every mail answered 202 was accepted exactly once by the simulator, or is
          `failed` with its reason (last_error) in `messages`.

It prints a table and writes it as Markdown (tests/chaos/results/chaos-<date>.md, or
chaos-short-<date>.md with --short; --out chooses the file). Exit status 0 iff every
scenario ran and shows nothing lost and nothing duplicated. The timings are reported,
never checked: a busy machine is slow, not wrong.

Recovery time: from the end of the fault until /readyz answers 200, everything accepted
before the end of the fault is done (its events stored, its mails sent or failed) and so
is something accepted after it (a batch stored, a mail sent), with the load still
running; then the load stops and the check also waits for sink lag 0 and an idle sender.
"""

import argparse
import collections
import concurrent.futures
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from helpers import mailpipe as mpl  # noqa: E402

BATCH = 20                # events per webhook batch
WEBHOOK_PERIOD = 0.25     # seconds between batches (about 80 events/s)
MAIL_PERIOD = 0.25        # seconds between mails (about 4 mails/s)
HTTP_TIMEOUT = 15
UNSETTLED = ("queued", "sending", "retrying")


def log(msg):
    print("%s chaos: %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# --- the stack ---------------------------------------------------------------

def start_stack():
    return mpl.start_private_stack(REPO, "mailpipe-chaos-", {
        "MAILPIPE_STACK_TIMEOUT": os.environ.get("MAILPIPE_STACK_TIMEOUT", "180"),
    }, timeout=400)


def stop_stack(st, keep=False):
    for title, text in mpl.stop_private_stack(st, keep=keep):
        log("%s: %s" % (title, text))


# --- the load ----------------------------------------------------------------

class Record:
    """What one scenario posted and what was answered."""

    def __init__(self, name):
        self.name = name
        self.tag = "chaos%s_%s" % (name.replace("-", ""), uuid.uuid4().hex[:8])
        self.lock = threading.Lock()
        self.posted = set()             # every sg_event_id posted (accepted or not)
        self.accepted = {}              # sg_event_id -> monotonic time of its 2xx
        self.mails = {}                 # message_id -> monotonic time of its 202
        self.keys = collections.defaultdict(set)   # Idempotency-Key -> message ids
        self.bodies = {}                # Idempotency-Key -> the mail's body
        self.mail_tries = 0
        self.mail_refused = collections.Counter()  # status (or exception) -> count
        self.hook_refused = collections.Counter()


class Load:
    """Two threads: webhook batches and mail sends into the current Record."""

    def __init__(self, mp, run):
        self.mp = mp
        self.run = run
        self.rec = None
        self.cv = threading.Condition()
        self.stopping = False
        self.threads = [threading.Thread(target=self._loop, args=(f,), daemon=True)
                        for f in (self._webhook_once, self._mail_once)]
        self.pending_hook = None        # a batch not yet answered 2xx: retried as is
        self.pending_mail = None

    def start(self):
        for t in self.threads:
            t.start()

    def resume(self, rec):
        with self.cv:
            self.rec = rec
            self.pending_hook = self.pending_mail = None
            self.cv.notify_all()

    def pause(self):
        """Stop posting; return once no request of the current scenario is in flight."""
        with self.cv:
            self.rec = None
            self.cv.notify_all()
            while any(getattr(t, "busy", False) for t in self.threads):
                self.cv.wait(0.1)

    def shutdown(self):
        self.pause()
        with self.cv:
            self.stopping = True
            self.cv.notify_all()
        for t in self.threads:
            t.join(HTTP_TIMEOUT * 3)

    def _loop(self, once):
        me = threading.current_thread()
        while True:
            with self.cv:
                while self.rec is None and not self.stopping:
                    me.busy = False
                    self.cv.notify_all()
                    self.cv.wait()
                if self.stopping:
                    me.busy = False
                    self.cv.notify_all()
                    return
                rec = self.rec
                me.busy = True
            t0 = time.monotonic()
            try:
                period = once(rec)
            except Exception:  # noqa: BLE001 - a load bug must be visible, not fatal
                traceback.print_exc()
                period = 1.0
            with self.cv:
                me.busy = False
                self.cv.notify_all()
            time.sleep(max(0.0, period - (time.monotonic() - t0)))

    def _webhook_once(self, rec):
        # a batch not answered 2xx is posted again as it was, as SendGrid retries
        if self.pending_hook is None or self.pending_hook[0] is not rec:
            events = [mpl.new_event(rec.tag) for _ in range(BATCH)]
            self.pending_hook = (rec, events)
        events = self.pending_hook[1]
        with rec.lock:
            rec.posted.update(e["sg_event_id"] for e in events)
        try:
            r = self.mp.post_webhook(events, timeout=HTTP_TIMEOUT)
            status = r.status_code
        except Exception as e:  # noqa: BLE001 - a refused or cut connection
            status = type(e).__name__
        if isinstance(status, int) and 200 <= status < 300:
            now = time.monotonic()
            with rec.lock:
                for e in events:
                    rec.accepted.setdefault(e["sg_event_id"], now)
            self.pending_hook = None
            return WEBHOOK_PERIOD
        with rec.lock:
            rec.hook_refused[status] += 1
        return 0.5

    def _mail_once(self, rec):
        # a mail not answered 202 is sent again with the same Idempotency-Key (a careful
        # client), at most 3 times; then the next mail
        if self.pending_mail is None or self.pending_mail[0] is not rec:
            key = "chaos-" + uuid.uuid4().hex
            body = mpl.mail_body(to=mpl.unique_address("chaos"),
                                 custom_args={"chaos_run": self.run, "chaos_scn": rec.name})
            self.pending_mail = [rec, key, body, 0]
        _, key, body, tries = self.pending_mail
        self.pending_mail[3] = tries + 1
        with rec.lock:
            rec.mail_tries += 1
        try:
            r = self.mp.send_mail(body, headers={"Idempotency-Key": key}, timeout=HTTP_TIMEOUT)
            status = r.status_code
        except Exception as e:  # noqa: BLE001
            status = type(e).__name__
        if status == 202:
            mid = r.headers.get("X-Message-Id", "")
            with rec.lock:
                rec.mails.setdefault(mid, time.monotonic())
                rec.keys[key].add(mid)
                rec.bodies[key] = body
            self.pending_mail = None
            return MAIL_PERIOD
        with rec.lock:
            rec.mail_refused[status] += 1
        if tries + 1 >= 3:
            self.pending_mail = None
        return 0.5


# --- probes ------------------------------------------------------------------

class Probe:
    def __init__(self, mp, load):
        self.mp = mp
        self.load = load
        self.after_settle = None                 # sabotage only
        self.sim_base = collections.Counter()   # acceptances by simulators killed since
        self.all_mails = []                      # every mail answered 202, all scenarios
        self.pool = concurrent.futures.ThreadPoolExecutor(8)

    def ready(self):
        try:
            return self.mp.request("GET", "/readyz", timeout=10).status_code == 200
        except Exception:  # noqa: BLE001
            return False

    def stored(self, rec):
        """{sg_event_id: rows} of this scenario's events."""
        rows = self.mp.query("select sg_event_id, count(*) from events"
                             " where starts_with(sg_event_id, %s) group by 1", rec.tag + "-")
        return dict(rows)

    def mail_rows(self, ids):
        """{message_id: (status, last_error, sendgrid_message_id)}."""
        if not ids:
            return {}
        rows = self.mp.query("select message_id, status, last_error, sendgrid_message_id"
                             " from messages where message_id = any(%s)", list(ids))
        return {r[0]: r[1:] for r in rows}

    def sim_counts(self, ids):
        """{message_id: acceptances by the simulator running now}."""
        def one(mid):
            return mid, self.mp.sim_count(mid)
        return dict(self.pool.map(one, ids))

    def snapshot_sim(self):
        """Before the simulator is killed: its counts would die with it."""
        ids = list(self.all_mails)
        rec = self.load.rec
        if rec is not None:
            with rec.lock:
                ids += list(rec.mails)
        counts = self.sim_counts(set(ids))
        for mid, n in counts.items():
            self.sim_base[mid] += n
        return sum(counts.values())

    def caught_up(self, rec, t_end):
        """Everything accepted up to t_end is done (events stored, mails settled), and
        so is something accepted after t_end: a batch's events, and a mail."""
        with rec.lock:
            want = [e for e, t in rec.accepted.items() if t <= t_end]
            new = [e for e, t in rec.accepted.items() if t > t_end]
            mails = [m for m, t in rec.mails.items() if t <= t_end]
            new_mails = [m for m, t in rec.mails.items() if t > t_end]
        if not new or not new_mails:
            return False
        stored = self.stored(rec)
        if any(e not in stored for e in want) or not any(e in stored for e in new):
            return False
        rows = self.mail_rows(mails + new_mails)

        def settled(m):
            return m in rows and rows[m][0] not in UNSETTLED
        return all(settled(m) for m in mails) and any(settled(m) for m in new_mails)

    def sender_idle(self):
        r = self.mp.redis()
        try:
            return self.mp.sender_lag() == 0 and r.zcard(mpl.REDIS_PREFIX + "retry") == 0
        finally:
            r.close()


# --- the faults --------------------------------------------------------------

def kill9(svc):
    def fault(mp, probe):
        old = mp.wait_pid(svc)
        hung = ""
        if svc in ("sender", "sendgrid-sim"):
            # the worst moment: the simulator has accepted a send and not answered yet
            base = mp.sim_stats()["hung"]
            mp.sim_faults(accept_then_hang_ms=5000, count=1)
            hung = mid_send(mp, base)
        if svc != "sendgrid-sim":
            os.kill(old, signal.SIGKILL)
            new = mp.wait_pid(svc, not_pid=old, timeout=60)
            mp.sim_clear()
            return "pid %d killed%s, %d started" % (old, hung, new)
        # The simulator counts its acceptances in memory: read them before it dies. The
        # sender is frozen meanwhile (SIGSTOP) so that no send lands between the reading
        # and the kill, and the simulator posts the events of what it accepted (as
        # SendGrid would after any cut connection); the send it holds then dies with it.
        sender = mp.wait_pid("sender")
        os.kill(sender, signal.SIGSTOP)
        try:
            mp.wait_sim_quiet(30)
            n = probe.snapshot_sim()
            os.kill(old, signal.SIGKILL)
        finally:
            os.kill(sender, signal.SIGCONT)
        new = mp.wait_pid(svc, not_pid=old, timeout=60)
        return ("pid %d killed%s, %d started (%d acceptances counted before the kill, with"
                " the sender frozen for the count)" % (old, hung, new, n))
    return fault


def mid_send(mp, base):
    """Wait (up to 10 s) until the simulator holds an accepted send unanswered (its
    "hung" count passes base)."""
    try:
        mpl.wait_until(lambda: mp.sim_stats()["hung"] > base, 10, interval=0.05,
                       desc="the simulator to hold an accepted send")
        time.sleep(0.2)
        return " while a send was accepted and not answered yet"
    except AssertionError:
        return " (no send was held: it came at a quiet moment)"


def kafka_down(seconds):
    def fault(mp, probe):
        reply = mp.kafka_ctl("down")
        assert reply.startswith("ok"), "kafka down: %r" % reply
        try:
            time.sleep(seconds)
        finally:
            up = mp.kafka_ctl("up")
            mp.kafka_ctl("clear")
        assert up.startswith("ok"), "kafka up: %r" % up
        return "brokers down %ds" % seconds
    return fault


def produce_errors(n, seconds):
    def fault(mp, probe):
        reply = mp.kafka_ctl("produce-errors %d" % n)
        assert reply.startswith("ok"), "produce-errors: %r" % reply
        try:
            time.sleep(seconds)
        finally:
            status = mp.kafka_ctl("status")
            mp.kafka_ctl("clear")
        return "produce-errors %d, %ds (status then: %s)" % (n, seconds, status[:120])
    return fault


def postgres_sigstop(seconds):
    def fault(mp, probe):
        pm, kids = mp.signal_postgres(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            mp.signal_postgres(signal.SIGCONT)
        return "postmaster %d and its %d children stopped %ds" % (pm, len(kids), seconds)
    return fault


def redis_restart(mp, probe):
    old = mp.wait_pid("redis")
    mp.stack("restart", "redis", timeout=120)
    return "redis %d restarted as %d (AOF, appendfsync everysec)" % (old, mp.pid_of("redis"))


def redis_flushall(mp, probe):
    # the simulator answers 500 to the next sends so that mails wait on the retry
    # schedule when it goes
    mp.sim_faults(status=500, count=12)
    r = mp.redis()
    try:
        try:
            mpl.wait_until(lambda: r.zcard(mpl.REDIS_PREFIX + "retry") > 0, 10,
                           interval=0.02, desc="a mail on the retry schedule")
        except AssertionError:
            pass    # flushed all the same; the note says how many were there
        before = r.dbsize()
        retry = r.zcard(mpl.REDIS_PREFIX + "retry")
        assert r.flushall()
    finally:
        r.close()
        mp.sim_clear()
    return "FLUSHALL of %d keys (%d mails on the retry schedule; the simulator answered" \
        " 500 to up to 12 sends before); %s" % (before, retry, replay_keys(mp, probe, 3))


def replay_keys(mp, probe, n):
    """A client sends n mails answered 202 before again, with the same Idempotency-Key
    and body (as after a lost answer). The answers join the scenario's record, so a
    second message id for one key is reported and its mail checked like any other."""
    rec = probe.load.rec
    with rec.lock:
        keys = [(k, rec.bodies[k], next(iter(v))) for k, v in rec.keys.items()][:n]
    same = 0
    for key, body, first in keys:
        resp = mp.send_mail(body, headers={"Idempotency-Key": key}, timeout=HTTP_TIMEOUT)
        if resp.status_code != 202:
            continue
        mid = resp.headers.get("X-Message-Id", "")
        same += mid == first
        with rec.lock:
            rec.mails.setdefault(mid, time.monotonic())
            rec.keys[key].add(mid)
    return "%d of %d earlier mails sent again with their Idempotency-Key got their first" \
        " message id back" % (same, len(keys))


def nginx_reload(times, gap):
    def fault(mp, probe):
        nginx = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin")
        ngx_dir = os.path.join(mp.run_dir, "nginx")
        master = mp.pid_of("nginx")
        for i in range(times):
            if i:
                time.sleep(gap)
            subprocess.run([nginx, "-p", ngx_dir + "/", "-c", os.path.join(ngx_dir, "nginx.conf"),
                            "-e", os.path.join(mp.run_dir, "logs", "nginx.log"), "-s", "reload"],
                           check=True, timeout=30, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        assert mp.pid_of("nginx") == master, "the nginx master changed on reload"
        return "nginx -s reload x%d (master %d kept)" % (times, master)
    return fault


def sabotage(mp, probe):
    """Not a fault: the harness's own check (--only sabotage must fail). After the
    scenario settles, one stored event is deleted and one sent mail is sent once more
    to the simulator directly; the check must count 1 lost event and 1 dup send."""
    def spoil(rec):
        with rec.lock:
            ev = next(iter(rec.accepted))
            mid = next(iter(rec.mails))
        mp.query("delete from events where sg_event_id = %s", ev)
        body = mpl.mail_body(custom_args={"mailpipe_message_id": mid})
        r = mp.sim_request("POST", "/v3/mail/send", json=body)
        assert r.status_code == 202, "direct send to the simulator: %d" % r.status_code
    probe.after_settle = spoil
    return "after settling: event deleted, mail sent again (the check must fail)"


FULL = [
    ("kill-ingest", kill9("ingest")),
    ("kill-sink", kill9("sink")),
    ("kill-sender", kill9("sender")),
    ("kill-sim", kill9("sendgrid-sim")),
    ("kafka-down", kafka_down(10)),
    ("produce-errors", produce_errors(50, 8)),
    ("pg-sigstop", postgres_sigstop(15)),
    ("redis-restart", redis_restart),
    ("redis-flushall", redis_flushall),
    ("nginx-reload", nginx_reload(3, 2)),
]
EXTRA = {"sabotage": sabotage}
SHORT = ["kill-sink", "kill-sender", "kafka-down", "redis-flushall"]
SHORT_FAULTS = {"kafka-down": kafka_down(5)}


# --- one scenario ----------------------------------------------------------

class Row:
    def __init__(self, name):
        self.name = name
        self.note = ""
        self.error = None
        self.ev_acc = self.ev_stored = self.ev_dup = self.ev_lost = 0
        self.m_acc = self.m_once = self.m_failed = self.m_dup = self.m_lost = 0
        self.recovery = None
        self.details = []

    @property
    def ok(self):
        return self.error is None and not (self.ev_dup or self.ev_lost or self.m_dup
                                           or self.m_lost)


def run_scenario(mp, load, probe, name, fault, warm, after, budget):
    row = Row(name)
    rec = Record(name)
    deadline = time.monotonic() + budget
    log("--- %s (tag %s)" % (name, rec.tag))
    load.resume(rec)
    try:
        time.sleep(warm)
        row.note = fault(mp, probe)
        t_end = time.monotonic()
        log("%s: %s" % (name, row.note))
        # recovery, with the load still running
        while time.monotonic() < deadline:
            try:
                if probe.ready() and probe.caught_up(rec, t_end):
                    row.recovery = time.monotonic() - t_end
                    break
            except Exception as e:  # noqa: BLE001 - the database may be down still
                row.details.append("probe: %r" % e)
            time.sleep(0.5)
        if row.recovery is None:
            row.error = "not caught up within the scenario budget (%ds)" % budget
        rest = t_end + after - time.monotonic()
        if rest > 0:
            time.sleep(rest)
    except Exception as e:  # noqa: BLE001 - report it, check what was accepted anyway
        row.error = "fault failed: %r" % e
        traceback.print_exc()
    finally:
        load.pause()
    settle(mp, probe, rec, row, max(deadline, time.monotonic() + 30))
    if probe.after_settle is not None:
        probe.after_settle(rec)
        probe.after_settle = None
    check(mp, probe, rec, row)
    log("%s: events %d/%d stored, dup %d, lost %d; mails %d: once %d, failed %d, dup %d,"
        " lost %d; recovery %s%s" % (
            name, row.ev_stored, row.ev_acc, row.ev_dup, row.ev_lost, row.m_acc, row.m_once,
            row.m_failed, row.m_dup, row.m_lost,
            "-" if row.recovery is None else "%.1fs" % row.recovery,
            "" if row.error is None else "; ERROR " + row.error))
    return row


def settle(mp, probe, rec, row, deadline):
    """With the load stopped: wait until every accepted event is stored, every mail
    settled, the sink's lag is 0, the sender idle and the simulator's events posted."""
    with rec.lock:
        want, mails = set(rec.accepted), list(rec.mails)

    def done():
        stored = probe.stored(rec)
        missing = len([e for e in want if e not in stored])
        rows = probe.mail_rows(mails)
        unsettled = len([m for m in mails if m not in rows or rows[m][0] in UNSETTLED])
        if missing or unsettled:
            raise AssertionError("%d events not stored, %d mails unsettled"
                                 % (missing, unsettled))
        if not probe.ready():
            raise AssertionError("/readyz is not 200")
        if not probe.sender_idle():
            raise AssertionError("the sender is not idle")
        if not all(v <= 0 for v in mp.sink_lag().values()):
            raise AssertionError("the sink lags")
        return True
    try:
        mpl.wait_until(done, max(5.0, deadline - time.monotonic()), interval=0.5,
                       desc="%s to settle" % rec.name)
    except AssertionError as e:
        row.details.append("settle: %s" % e)
        if row.error is None:
            row.error = "did not settle: %s" % str(e)[:200]


def check(mp, probe, rec, row):
    with rec.lock:
        accepted, posted = set(rec.accepted), set(rec.posted)
        mails = dict(rec.mails)
        keys = {k: set(v) for k, v in rec.keys.items()}
        row.details.append("webhook refusals (retried): %s" % dict(rec.hook_refused))
        row.details.append("mail tries %d, refusals: %s" % (rec.mail_tries,
                                                            dict(rec.mail_refused)))
    stored = probe.stored(rec)
    row.ev_acc = len(accepted)
    row.ev_stored = len([e for e in accepted if stored.get(e, 0) >= 1])
    dups = {e: n for e, n in stored.items() if n > 1}
    strays = [e for e in stored if e not in posted]
    row.ev_dup = len(dups)
    lost = [e for e in accepted if e not in stored]
    row.ev_lost = len(lost)
    if dups:
        row.details.append("duplicated events, e.g. %s" % list(dups.items())[:5])
    if lost:
        row.details.append("lost events, e.g. %s" % lost[:5])
    if strays:
        row.details.append("%d stored events never posted?! e.g. %s" % (len(strays), strays[:3]))
        row.error = row.error or "stray events"
    unacked = len([e for e in posted if e not in accepted and e in stored])
    if unacked:
        row.details.append("%d events never answered 2xx were stored (fine: at least once"
                           " for the sender of the webhook)" % unacked)

    ids = list(mails)
    probe.all_mails.extend(ids)
    rows = probe.mail_rows(ids)
    counts = probe.sim_counts(ids)
    row.m_acc = len(ids)
    bad = collections.defaultdict(list)
    for mid in ids:
        n = counts.get(mid, 0) + probe.sim_base.get(mid, 0)
        status, err, sg_id = rows.get(mid, (None, None, None))
        if n == 1:
            row.m_once += 1
            if status in ("failed", "suppressed"):
                bad["sent once but recorded %s" % status].append(mid)
        elif n > 1:
            row.m_dup += 1
            bad["sent %d times" % n].append(mid)
        elif status in ("failed", "suppressed") and err:
            row.m_failed += 1
            bad["failed: %s" % err[:80]].append(mid)
        else:
            row.m_lost += 1
            bad["never sent, status %s%s" % (status, ", with a sendgrid id" if sg_id else "")].append(mid)
    for what, mids in bad.items():
        row.details.append("%d mails %s, e.g. %s" % (len(mids), what, mids[:3]))
    multi = {k: v for k, v in keys.items() if len(v) > 1}
    for key, mids in multi.items():
        # one request answered with two ids (Redis lost the key before the sender bound
        # it in messages): the sender must refuse all but one, so the recipient gets the
        # mail once; more than one send for one key is a duplicate like any other
        sends = sum(counts.get(m, 0) + probe.sim_base.get(m, 0) for m in mids)
        if sends > 1:
            row.m_dup += 1
            row.details.append("Idempotency-Key %s answered with ids %s, sent %d times"
                               % (key, mids, sends))
    if multi:
        row.details.append("%d Idempotency-Keys answered with more than one message id, each"
                           " key sent at most once (the extra ids refused by the sender as"
                           " duplicates)" % sum(1 for k, v in multi.items()
                                                if sum(counts.get(m, 0) + probe.sim_base.get(m, 0)
                                                       for m in v) <= 1))


# --- the report --------------------------------------------------------------

HEAD = ("scenario", "accepted events", "stored", "dup", "lost", "accepted mails",
        "sent once", "failed", "dup sends", "lost", "recovery s")


def cells(row):
    rec = "-" if row.recovery is None else "%.1f" % row.recovery
    name = row.name if row.error is None else row.name + " (!)"
    return (name, row.ev_acc, row.ev_stored, row.ev_dup, row.ev_lost, row.m_acc, row.m_once,
            row.m_failed, row.m_dup, row.m_lost, rec)


def text_table(rows):
    data = [HEAD] + [tuple(str(c) for c in cells(r)) for r in rows]
    widths = [max(len(d[i]) for d in data) for i in range(len(HEAD))]
    out = []
    for i, d in enumerate(data):
        out.append(" | ".join(c.ljust(w) if j == 0 else c.rjust(w)
                              for j, (c, w) in enumerate(zip(d, widths))))
        if i == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def md_table(rows):
    out = ["| " + " | ".join(HEAD) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(HEAD) - 1)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in cells(r)) + " |")
    return "\n".join(out)


def machine():
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            check=False).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           check=False).stdout.strip()
    mem = "?"
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    try:
        load1 = "%.2f" % os.getloadavg()[0]
    except OSError:
        load1 = "?"
    return {"commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "cores": str(os.cpu_count()), "memory": mem, "load": load1,
            "kernel": platform.release()}


def write_md(path, rows, short, elapsed, info):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# mailpipe chaos run%s, %s" % (" (short)" if short else "", when),
        "",
        "commit %s; %s cores, %s memory, load average %s at the end; Linux %s; %.0f s in all."
        % (info["commit"], info["cores"], info["memory"], info["load"], info["kernel"], elapsed),
        "",
        "Load: a signed webhook batch of %d events every %.2f s (a batch not answered 2xx is"
        " posted again as it was) and a mail every %.2f s to a plain recipient (a mail not"
        " answered 202 is sent again with the same Idempotency-Key, up to 3 times)."
        % (BATCH, WEBHOOK_PERIOD, MAIL_PERIOD),
        "",
        md_table(rows),
        "",
        "accepted events: events of batches answered 2xx; stored: of those, in `events`;"
        " dup: sg_event_ids with more than one row; lost: accepted, not stored. accepted"
        " mails: answered 202; sent once: accepted exactly once by the simulator; failed:"
        " not sent and `failed` with its reason; dup sends: accepted more than once; lost:"
        " neither. recovery s: from the end of the fault until /readyz is 200,"
        " everything accepted before the end of the fault is stored or sent, and so is"
        " a batch and a mail accepted after it, under load."
        " (!) marks a scenario that did not finish cleanly.",
        "",
        "## Scenarios",
        "",
    ]
    for r in rows:
        lines.append("- **%s**: %s%s" % (r.name, r.note or "-",
                                         "" if r.error is None else " **ERROR: %s**" % r.error))
        for d in r.details:
            lines.append("  - %s" % d)
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


# --- main --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true",
                    default=os.environ.get("CHAOS_SHORT") == "1",
                    help="the short version (CHAOS_SHORT=1): 4 scenarios, shorter load")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--out", help="the Markdown file to write")
    ap.add_argument("--keep", action="store_true", help="keep the run dir (kept anyway"
                    " when a scenario fails, unless --no-keep)")
    ap.add_argument("--no-keep", action="store_true", help="never keep the run dir")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole run (default 570, short 420)")
    args = ap.parse_args()

    faults = dict(FULL)
    faults.update(EXTRA)
    if args.short:
        faults.update(SHORT_FAULTS)
        names = SHORT
        warm, after, per = 2.0, 2.0, 90
    else:
        names = [n for n, _ in FULL]
        warm, after, per = 3.0, 3.0, 90
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in faults]
        if unknown:
            ap.error("unknown scenario(s) %s; known: %s" % (unknown, ", ".join(faults)))
    budget = args.budget or (420 if args.short else 570)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = args.out or os.path.join(REPO, "tests", "chaos", "results", "chaos-%s%s.md" % (
        "short-" if args.short else "", date))

    t0 = time.monotonic()
    log("starting a private stack")
    mp = start_stack()
    log("stack up in %.0fs (run dir %s)" % (time.monotonic() - t0, mp.run_dir))
    rows, failed = [], False
    load = Load(mp, uuid.uuid4().hex[:12])
    probe = Probe(mp, load)
    try:
        load.start()
        for name in names:
            left = budget - (time.monotonic() - t0)
            if left < 30:
                row = Row(name)
                row.error = "skipped: the run's time budget is spent"
                rows.append(row)
                continue
            rows.append(run_scenario(mp, load, probe, name, faults[name], warm, after,
                                     min(per, left - 20)))
    except BaseException:
        failed = True
        raise
    finally:
        load.shutdown()
        probe.pool.shutdown(wait=False)
        bad = failed or not rows or not all(r.ok for r in rows)
        if bad:
            print(mp.log_tails(40))
        stop_stack(mp, keep=args.keep or (bad and not args.no_keep))
    elapsed = time.monotonic() - t0
    info = machine()
    print()
    print(text_table(rows))
    for r in rows:
        for d in ([r.error] if r.error else []) + r.details:
            print("  %s: %s" % (r.name, d))
    write_md(out, rows, args.short, elapsed, info)
    print("\nwritten %s (%.0f s, commit %s)" % (out, elapsed, info["commit"]))
    ok = rows and all(r.ok for r in rows)
    print("chaos: %s" % ("every scenario: nothing lost, nothing duplicated" if ok
                         else "FAILED: see the rows marked (!) or with lost/dup"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
