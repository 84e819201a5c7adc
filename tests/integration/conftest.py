"""Integration test harness: one private mailpipe stack per test session.

The stack runs in a fresh temp dir on free loopback ports, started with
`ops/stack up` and always stopped with `ops/stack down`. Set
MAILPIPE_KEEP_RUN=1 to keep the run dir (logs, data) afterwards.
"""

import os
import re
import uuid

import pytest

from helpers import mailpipe as mpl

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# fast tests first, slow ones last
FILE_ORDER = ("test_signature.py", "test_shapes.py", "test_invalid_events.py",
              "test_batch_load.py",
              # the mail send path (issue 3); the crash test is the slow one
              "test_mail_send.py", "test_mail_validation.py", "test_mail_idempotency.py",
              "test_mail_retries.py", "test_mail_suppression.py", "test_mail_crash.py",
              "test_failures.py")
# after everything else: retention archives and drops old rows of every test
FILE_LAST = ("test_retention.py",)

def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = item.path.name
        if name in FILE_LAST:
            return len(FILE_ORDER) + 1 + FILE_LAST.index(name)
        return FILE_ORDER.index(name) if name in FILE_ORDER else len(FILE_ORDER)
    items.sort(key=rank)  # stable: keeps the order inside each file


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed:
        item.config.mailpipe_failed = True


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for title, text in getattr(config, "mailpipe_report", []):
        terminalreporter.section(title)
        terminalreporter.write_line(text)


def _report(config, title, text):
    if not hasattr(config, "mailpipe_report"):
        config.mailpipe_report = []
    config.mailpipe_report.append((title, text))


@pytest.fixture(scope="session")
def mp(request):
    """The running stack (helpers.mailpipe.Stack)."""
    config = request.config
    try:
        st = mpl.start_private_stack(REPO, "mailpipe-test-")
    except BaseException:
        config.mailpipe_failed = True
        raise
    try:
        yield st
    except BaseException:
        config.mailpipe_failed = True
        raise
    finally:
        if getattr(config, "mailpipe_failed", False):
            _report(config, "mailpipe service logs (tails, run dir %s)" % st.run_dir,
                    st.log_tails())
        for title, text in mpl.stop_private_stack(st):
            _report(config, title, text)


@pytest.fixture
def tag(request):
    """A per-test prefix of sg_event_id: each test counts only its own rows."""
    name = re.sub(r"[^A-Za-z0-9]", "", request.node.name.replace("test_", "", 1))
    return "%s_%s" % (name[:32], uuid.uuid4().hex[:10])


@pytest.fixture
def make_event(tag):
    """make_event(base=None, **overrides) -> a delivered event tagged for this test."""
    def make(base=None, **overrides):
        return mpl.new_event(tag, base, **overrides)
    return make


def _mp_fixture(attr, doc=None):
    """A fixture named attr that hands the test the stack's mp.<attr>."""
    def fixture(mp):
        return getattr(mp, attr)
    fixture.__name__ = attr
    fixture.__doc__ = doc
    return pytest.fixture(name=attr)(fixture)


sign = _mp_fixture("sign")
post_webhook = _mp_fixture("post_webhook")
db = _mp_fixture("db", "db() -> a new autocommit psycopg2 connection (the admin role).")
kafka_ctl = _mp_fixture("kafka_ctl")
stack = _mp_fixture("stack")
pid_of = _mp_fixture("pid_of")


@pytest.fixture
def wait_until():
    return mpl.wait_until


@pytest.fixture
def sim(mp):
    """The SendGrid simulator's fault knobs, cleared after the test whatever
    happened: sim.faults(status=500, count=2), sim.clear()."""
    class Sim:
        faults = staticmethod(mp.sim_faults)
        clear = staticmethod(mp.sim_clear)
        count = staticmethod(mp.sim_count)
        messages = staticmethod(mp.sim_messages)
    try:
        yield Sim()
    finally:
        mp.sim_clear()
