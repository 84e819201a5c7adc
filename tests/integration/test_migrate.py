"""`mailpipectl migrate` and `migrate --status`: forward-only numbered migrations, each
in its own transaction, under an advisory lock so two hosts cannot run them at once.

Each test migrates a database of its own, created on the stack's PostgreSQL, so the
session's database is only read (its --status).
"""

import os
import re
import shutil
import subprocess
import threading
import uuid

import psycopg2
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SQL_DIR = os.path.join(REPO, "sql")
FILES = sorted(f for f in os.listdir(SQL_DIR) if re.match(r"^\d{3}_.*\.sql$", f))


@pytest.fixture
def fresh_db(mp):
    """(url, connect) for a new empty database, dropped afterwards."""
    name = "mp_migrate_%s" % uuid.uuid4().hex[:10]
    admin = mp.db()
    admin.cursor().execute("CREATE DATABASE %s" % name)  # name is ours, not input
    url = re.sub(r"/[^/?]+(\?|$)", "/%s\\1" % name, mp.vars["DATABASE_URL"], count=1)
    assert url != mp.vars["DATABASE_URL"]

    def connect():
        c = psycopg2.connect(url, connect_timeout=5)
        c.autocommit = True
        return c
    yield url, connect
    cur = admin.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,))
    cur.execute("DROP DATABASE %s" % name)
    admin.close()


def migrate(mp, url, *args, check=True):
    return mp.mailpipectl("migrate", "--database-url", url, *args, check=check, timeout=120)


def applied(connect):
    c = connect()
    try:
        cur = c.cursor()
        cur.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return cur.fetchall()
    finally:
        c.close()


def test_status_of_the_session_database_lists_every_file_applied(mp):
    out = mp.mailpipectl("migrate", "--status").stdout
    for f in FILES:
        line = [l for l in out.splitlines() if f in l]
        assert len(line) == 1, (f, out)
        assert "applied" in line[0] and "pending" not in line[0], line[0]


def test_fresh_database_then_rerun_applies_nothing(mp, fresh_db):
    url, connect = fresh_db
    st = migrate(mp, url, "--status").stdout
    assert all("pending" in l for l in st.splitlines() if re.search(r"\d{3}_", l)), st
    out = migrate(mp, url).stdout
    assert "%d applied, 0 pending" % len(FILES) in out, out
    assert [n for _v, n in applied(connect)] == [f[:-4] for f in FILES] or \
        [n for _v, n in applied(connect)] == FILES
    out = migrate(mp, url).stdout
    assert "0 applied" in out and "0 pending" in out, out


def test_two_hosts_at_once_apply_each_migration_once(mp, fresh_db):
    url, connect = fresh_db
    results = [None, None]

    def run(i):
        results[i] = migrate(mp, url, check=False)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert all(r is not None and r.returncode == 0 for r in results), results
    rows = applied(connect)
    assert len(rows) == len(FILES) and len({v for v, _ in rows}) == len(FILES), rows
    counts = sorted(int(re.search(r"(\d+) applied", r.stdout).group(1)) for r in results)
    assert counts == [0, len(FILES)], [r.stdout for r in results]


def copy_sql(tmp_path):
    d = tmp_path / "sql"
    shutil.copytree(SQL_DIR, d)
    return d


def test_an_edited_applied_file_is_refused(mp, fresh_db, tmp_path):
    url, connect = fresh_db
    migrate(mp, url)
    d = copy_sql(tmp_path)
    with open(d / FILES[2], "a") as f:
        f.write("\n-- edited after it was applied\n")
    p = migrate(mp, url, "--dir", str(d), check=False)
    assert p.returncode != 0 and FILES[2][:-4] in p.stderr and "changed" in p.stderr, p


def test_a_missing_applied_file_is_refused(mp, fresh_db, tmp_path):
    url, connect = fresh_db
    migrate(mp, url)
    d = copy_sql(tmp_path)
    os.remove(d / FILES[-1])
    p = migrate(mp, url, "--dir", str(d), check=False)
    assert p.returncode != 0 and FILES[-1][:3] in p.stderr, p


def test_a_failing_migration_is_rolled_back_whole(mp, fresh_db, tmp_path):
    url, connect = fresh_db
    migrate(mp, url)
    d = copy_sql(tmp_path)
    (d / "999_broken.sql").write_text(
        "CREATE TABLE migrate_half_done (x int);\nSELECT 1 / 0;\n")
    p = migrate(mp, url, "--dir", str(d), check=False)
    assert p.returncode != 0 and "999_broken" in p.stderr, p
    c = connect()
    try:
        cur = c.cursor()
        cur.execute("SELECT to_regclass('migrate_half_done')")
        assert cur.fetchone()[0] is None, "the failed migration's table survived"
    finally:
        c.close()
    assert all(v != 999 for v, _ in applied(connect))
    st = migrate(mp, url, "--dir", str(d), "--status").stdout
    assert re.search(r"999_broken.*pending", st), st


def test_a_pending_file_older_than_an_applied_one_is_refused(mp, fresh_db, tmp_path):
    url, connect = fresh_db
    d = copy_sql(tmp_path)
    (d / "998_late.sql").write_text("SELECT 1;\n")
    migrate(mp, url, "--dir", str(d))
    (d / "997_older.sql").write_text("SELECT 1;\n")
    p = migrate(mp, url, "--dir", str(d), check=False)
    assert p.returncode != 0 and "997" in p.stderr, p
