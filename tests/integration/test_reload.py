"""Run-time operations against the real stack: SIGHUP reloads of the settings
file, SIGUSR1/SIGUSR2 log levels, request ids and Kafka coordinates as logfmt
keys, and SIGTERM that finishes what is in flight.

The module writes the run's settings file <run>/mailpipe.conf, which ops/stack
passes to ingest, query, sink and sender with -c (restarting them once), edits
it and signals the processes, and reads what they log in <run>/logs/<svc>.log.
At the end the file is emptied and reloaded, so the stack goes on with its
defaults.
"""

import os
import re
import signal
import threading
import time

import pytest

from helpers.mailpipe import (SENT_OR_BEYOND, assert_accepted, encode, mail_body,
                              pid_alive, wait_until)

PROGRAMS = ("ingest", "query", "sink", "sender")


class Logs:
    """Reads what a service logged after a mark."""

    def __init__(self, mp):
        self.mp = mp

    def path(self, svc):
        return os.path.join(self.mp.run_dir, "logs", svc + ".log")

    def mark(self, svc):
        try:
            return os.path.getsize(self.path(svc))
        except OSError:
            return 0

    def since(self, svc, mark):
        with open(self.path(svc), "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait(self, svc, mark, pattern, timeout=15):
        """Waits until svc logged a line matching pattern after mark; returns it."""
        rx = re.compile(pattern)

        def found():
            for line in self.since(svc, mark).splitlines():
                if rx.search(line):
                    return line
            return None
        return wait_until(found, timeout, interval=0.1,
                          desc="%s logs /%s/" % (svc, pattern))


@pytest.fixture(scope="module")
def conf(mp):
    """The settings file the four programs read; yields a writer for it."""
    path = os.path.join(mp.run_dir, "mailpipe.conf")

    def write(text):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    write("log.level = info\n")
    try:
        for svc in PROGRAMS:
            old = mp.pid_of(svc)
            mp.stack("restart", svc)
            mp.wait_pid(svc, not_pid=old)
        wait_until(lambda: mp.request("GET", "/healthz", timeout=5).status_code == 200,
                   30, desc="ingest answers after the restart")
        yield write
    finally:
        write("# emptied by test_reload.py\n")
        for svc in PROGRAMS:
            pid = mp.pid_of(svc)
            if pid_alive(pid):
                os.kill(pid, signal.SIGHUP)


@pytest.fixture
def logs(mp):
    return Logs(mp)


def hup(mp, svc, via_stack=False):
    pid = mp.wait_pid(svc)
    if via_stack:
        out = mp.stack("reload", svc).stdout
        assert "sent SIGHUP to %s (pid %d)" % (svc, pid) in out, out
    else:
        os.kill(pid, signal.SIGHUP)
    return pid


def test_sighup_applies_level_and_warns_about_restart_keys(mp, conf, logs):
    marks = {svc: logs.mark(svc) for svc in PROGRAMS}
    conf("log.level = debug\n"
         "query.threads = 3\n"
         "ingest.threads = 5\n"
         "kafka.sink_group = other-group\n"
         "auth.refresh_seconds = 7\n"
         "sender.rate_per_second = 500\n")
    pids = {svc: hup(mp, svc, via_stack=svc == "sink") for svc in PROGRAMS}
    try:
        for svc in PROGRAMS:
            line = logs.wait(svc, marks[svc], r"msg=\"log level now debug \(log.level\)\"")
            assert "level=warn" in line, line
        logs.wait("query", marks["query"],
                  r"level=warn .*msg=\"'query.threads' changed: restart to apply\"")
        logs.wait("ingest", marks["ingest"],
                  r"level=warn .*msg=\"'ingest.threads' changed: restart to apply\"")
        logs.wait("sink", marks["sink"],
                  r"level=warn .*msg=\"'kafka.sink_group' changed: restart to apply\"")
        logs.wait("ingest", marks["ingest"], r"msg=\"'auth.refresh_seconds' changed: applied\"")
        logs.wait("sender", marks["sender"],
                  r"msg=\"'sender.rate_per_second' changed: applied\"")

        # debug lines now appear: every request's, carrying its request id
        mark = logs.mark("query")
        r = mp.request("GET", "/readyz", timeout=10)
        rid = r.headers.get("X-Request-Id", "")
        assert re.fullmatch(r"[0-9a-f]{32}", rid), r.headers
        logs.wait("query", mark, r"level=debug .*msg=\"GET /readyz -> %d\" request_id=%s$"
                  % (r.status_code, rid))
        assert {svc: mp.pid_of(svc) for svc in PROGRAMS} == pids, "nothing restarted"
    finally:
        marks = {svc: logs.mark(svc) for svc in PROGRAMS}
        conf("log.level = info\n")
        for svc in PROGRAMS:
            hup(mp, svc)
        for svc in PROGRAMS:
            logs.wait(svc, marks[svc], r"msg=\"log level now info \(log.level\)\"")

    mark = logs.mark("query")
    r = mp.request("GET", "/readyz", timeout=10)
    rid = r.headers["X-Request-Id"]
    time.sleep(1)
    assert "request_id=%s" % rid not in logs.since("query", mark), "info: no debug line"


def test_sighup_applies_webhook_max_age_at_once(mp, conf, logs, make_event):
    old_ts = str(int(time.time()) - 3600)
    pid = mp.wait_pid("ingest")
    mark = logs.mark("ingest")
    conf("log.level = info\nwebhook.max_age_seconds = 600\n")
    try:
        hup(mp, "ingest")
        logs.wait("ingest", mark, r"msg=\"'webhook.max_age_seconds' changed: applied\"")
        r = mp.post_webhook([make_event()], ts=old_ts)
        assert r.status_code == 401, r.text
    finally:
        mark = logs.mark("ingest")
        conf("log.level = info\n")
        hup(mp, "ingest")
        logs.wait("ingest", mark, r"msg=\"'webhook.max_age_seconds' changed: applied\"")
    assert_accepted(mp.post_webhook([make_event()], ts=old_ts), 1)
    assert mp.pid_of("ingest") == pid, "applied without a restart"


def test_invalid_file_on_sighup_keeps_the_running_settings(mp, conf, logs):
    mark = logs.mark("ingest")
    conf("log.level = info\nlog.level = loud\n")
    try:
        pid = hup(mp, "ingest")
        line = logs.wait("ingest", mark, r"level=error .*keeping the running settings")
        assert "mailpipe.conf:2: invalid value for 'log.level'" in line, line
        time.sleep(0.5)
        assert mp.pid_of("ingest") == pid and pid_alive(pid)
        assert mp.request("GET", "/healthz", timeout=10).status_code == 200
    finally:
        conf("log.level = info\n")


def test_sigusr1_and_sigusr2_step_the_level(mp, conf, logs):
    pid = mp.wait_pid("ingest")
    mark = logs.mark("ingest")
    os.kill(pid, signal.SIGUSR1)
    try:
        line = logs.wait("ingest", mark, r"msg=\"log level now debug \(SIGUSR1\)\"")
        assert "level=warn" in line
        mark = logs.mark("ingest")
        r = mp.request("GET", "/healthz", timeout=10)
        logs.wait("ingest", mark, r"level=debug .*GET /healthz -> 200\" request_id=%s$"
                  % r.headers["X-Request-Id"])
    finally:
        os.kill(pid, signal.SIGUSR2)
    logs.wait("ingest", mark, r"level=warn .*msg=\"log level now info \(SIGUSR2\)\"")
    mark = logs.mark("ingest")
    r = mp.request("GET", "/healthz", timeout=10)
    time.sleep(1)
    assert r.headers["X-Request-Id"] not in logs.since("ingest", mark)


def test_request_lines_share_the_answers_request_id(mp, conf, logs, make_event):
    """A refused webhook logs at warn: its line, the answer and nginx's access
    log name one request id."""
    mark, amark = logs.mark("ingest"), logs.mark("nginx-access")
    r = mp.post_webhook([make_event()], sign=False)
    assert r.status_code == 401, r.text
    rid = r.headers.get("X-Request-Id", "")
    assert re.fullmatch(r"[0-9a-f]{32}", rid), r.headers
    line = logs.wait("ingest", mark, r"msg=\"webhook refused: .*request_id=")
    assert line.endswith(" request_id=%s" % rid), (line, rid)
    logs.wait("nginx-access", amark, r"POST /webhooks/sendgrid .* 401 .*id=%s" % rid)

    # an answer nginx makes itself carries the id of its access log line too
    r = mp.request("GET", "/no-such-path-%s" % rid, timeout=10)
    assert r.status_code == 404, r.text
    nid = r.headers.get("X-Request-Id", "")
    assert re.fullmatch(r"[0-9a-f]{32}", nid) and nid != rid, r.headers
    logs.wait("nginx-access", amark, r"GET /no-such-path-%s .* 404 .*id=%s" % (rid, nid))


def test_sink_dead_letter_line_names_topic_partition_offset(mp, conf, logs, tag, make_event):
    marker = "%s-poison" % tag
    poison = make_event(event="open", mp_test_marker=marker, tiny="@TINY@")
    mark = logs.mark("sink")
    r = mp.post_webhook(encode([poison]).replace(b'"@TINY@"', b"1e-20000"))
    assert_accepted(r, 1)
    wait_until(lambda: mp.query(
        "select topic, kafka_partition, kafka_offset from dead_letters"
        " where position(convert_to(%s, 'UTF8') in payload) > 0", marker), 30,
        desc="the poison event dead-lettered")
    topic, part, off = mp.query(
        "select topic, kafka_partition, kafka_offset from dead_letters"
        " where position(convert_to(%s, 'UTF8') in payload) > 0", marker)[0]
    line = logs.wait("sink", mark, r"level=warn .*msg=\"record dead-lettered: .*\" "
                     r"topic=%s partition=%d offset=%d sg_event_id=%s$"
                     % (re.escape(topic), part, off, re.escape(poison["sg_event_id"])))
    assert "refused by postgresql" in line, line


def test_sender_line_names_topic_partition_offset_and_message(mp, conf, logs):
    pid = mp.wait_pid("sender")
    mark = logs.mark("sender")
    os.kill(pid, signal.SIGUSR1)
    try:
        logs.wait("sender", mark, r"log level now debug")
        mid = mp.send_ok(mail_body())
        logs.wait("sender", mark, r"level=debug .*msg=\"sent x_message_id=.*\" "
                  r"topic=mail.requests partition=\d+ offset=\d+ message_id=%s$" % mid,
                  timeout=30)
    finally:
        os.kill(pid, signal.SIGUSR2)
    logs.wait("sender", mark, r"log level now info")


def test_sigterm_under_load_loses_nothing_and_exits_promptly(mp, conf, logs, tag, make_event):
    accepted, stop = [], threading.Event()
    lock = threading.Lock()

    def load():
        while not stop.is_set():
            batch = [make_event() for _ in range(5)]
            try:
                r = mp.post_webhook(batch, timeout=15)
            except Exception:  # noqa: BLE001 - refused while ingest restarts
                time.sleep(0.05)
                continue
            if 200 <= r.status_code < 300:
                with lock:
                    accepted.extend(e["sg_event_id"] for e in batch)
            else:
                time.sleep(0.05)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        for svc in ("ingest", "sink", "query", "sender"):
            mark = logs.mark(svc)
            pid = mp.wait_pid(svc)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not pid_alive(pid), 10, interval=0.05,
                       desc="%s (pid %d) gone within 10 s of SIGTERM" % (svc, pid))
            took = time.monotonic() - t0
            assert took < 10, (svc, took)
            print("SIGTERM: %s exited in %.2f s" % (svc, took))
            logs.wait(svc, mark, r"msg=\"exiting with status 0\"", timeout=5)
            mp.wait_pid(svc, not_pid=pid)
            time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    wait_until(lambda: mp.request("GET", "/healthz", timeout=5).status_code == 200, 30,
               desc="ingest back")
    assert len(accepted) > 0
    n = len(set(accepted))
    mp.wait_rows(tag, n, timeout=90)
    mp.wait_sink_idle(60)
    assert tuple(mp.count_events(tag)) == (n, n), "every accepted event stored once"


def test_sigterm_while_postgres_is_away_leaves_the_batch_for_replay(mp, conf, logs, tag,
                                                                    make_event):
    """The sink stuck retrying a batch stops at once on SIGTERM: the batch is not
    committed, its offsets not stored, and the next sink writes it once."""
    events = [make_event() for _ in range(20)]
    mp.wait_sink_idle()
    stopped = False
    try:
        mp.stack("stop", "postgres", timeout=60)
        stopped = True
        mark = logs.mark("sink")
        assert_accepted(mp.post_webhook(events), len(events))
        logs.wait("sink", mark, r"msg=\"batch of \d+ not written, retrying in", timeout=30)
        pid = mp.wait_pid("sink")
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), 10, interval=0.05,
                   desc="the sink (pid %d) gone within 10 s of SIGTERM" % pid)
        print("SIGTERM: sink waiting for postgresql exited in %.2f s"
              % (time.monotonic() - t0))
        logs.wait("sink", mark, r"msg=\"shutdown during retry: batch left for replay\"")
        logs.wait("sink", mark, r"pid=%d msg=\"exiting with status 0\"" % pid)
        mp.stack("start", "postgres", timeout=120)
        stopped = False
    finally:
        if stopped:
            mp.stack("start", "postgres", timeout=120, check=False)
    mp.wait_rows(tag, len(events), timeout=60)
    mp.wait_sink_idle(60)
    assert tuple(mp.count_events(tag)) == (len(events), len(events))


def test_sigterm_during_a_send_finishes_it_and_sends_once(mp, conf, logs, sim):
    """The sender stopped while SendGrid takes 2.5 s to answer finishes (or
    releases) that send and exits 0: the mail reaches SendGrid exactly once."""
    mp.wait_sender_idle()
    sim.faults(latency_ms=2500)
    mark = logs.mark("sender")
    mid = mp.send_ok(mail_body())
    time.sleep(1.0)  # the sender has taken it and waits for the simulator
    pid = mp.wait_pid("sender")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pid_alive(pid), 10, interval=0.05,
               desc="the sender (pid %d) gone within 10 s of SIGTERM" % pid)
    print("SIGTERM: sender in a send exited in %.2f s" % (time.monotonic() - t0))
    logs.wait("sender", mark, r"pid=%d msg=\"exiting with status 0\"" % pid)
    sim.clear()
    mp.wait_status(mid, SENT_OR_BEYOND, timeout=60)
    time.sleep(1)
    assert mp.sim_count(mid) == 1, "sent %d times" % mp.sim_count(mid)
