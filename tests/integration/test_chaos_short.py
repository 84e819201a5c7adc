"""The short chaos run (tests/chaos/chaos.py --short) inside `make test`: its own private
stack (not the session's `mp`), a steady load of webhook batches and mails, and four
faults (the sink and the sender killed, the Kafka brokers down, Redis emptied). Every
event answered 2xx must be stored exactly once and every mail answered 202 sent exactly
once or failed with its reason; the timings are only reported.
"""

import os
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHAOS = os.path.join(REPO, "tests", "chaos", "chaos.py")


def run_chaos(args, timeout, show):
    """Runs tests/chaos/chaos.py ARGS (its own private stack); prints the last show
    characters of its output. Returns the CompletedProcess."""
    env = dict(os.environ)
    env.pop("CHAOS_SHORT", None)
    proc = subprocess.run([sys.executable, CHAOS] + args, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout, check=False)
    print(proc.stdout[-show:])
    return proc


def test_chaos_short_loses_and_duplicates_nothing():
    with tempfile.TemporaryDirectory(prefix="mailpipe-chaos-test-") as tmp:
        out = os.path.join(tmp, "chaos-short.md")
        proc = run_chaos(["--short", "--out", out], 600, 20000)
        assert proc.returncode == 0, "chaos --short exited %d:\n%s" % (
            proc.returncode, proc.stdout[-6000:])
        with open(out, encoding="utf-8") as f:
            report = f.read()
    assert "| kill-sink |" in report and "| redis-flushall |" in report, report


def test_chaos_check_catches_a_lost_event_and_a_duplicate_send():
    # the harness's own check: with one stored event deleted and one mail sent twice
    # behind its back, it must report exactly that and exit non-zero
    with tempfile.TemporaryDirectory(prefix="mailpipe-chaos-test-") as tmp:
        out = os.path.join(tmp, "chaos-sabotage.md")
        proc = run_chaos(["--only", "sabotage", "--no-keep", "--out", out], 300, 6000)
        assert proc.returncode == 1, "chaos --only sabotage exited %d:\n%s" % (
            proc.returncode, proc.stdout[-6000:])
        with open(out, encoding="utf-8") as f:
            row = [l for l in f if l.startswith("| sabotage")]
    assert len(row) == 1, row
    cols = [c.strip() for c in row[0].strip().strip("|").split("|")]
    # scenario | events: acc stored dup lost | mails: acc once failed dup lost
    assert (cols[3], cols[4], cols[8], cols[9]) == ("0", "1", "1", "0"), row[0]
    assert int(cols[2]) == int(cols[1]) - 1 and int(cols[6]) == int(cols[5]) - 1, row[0]
