"""mailpipectl retention and restore against the real stack.

Events are posted into two old months (whose partitions the test creates, as an
older deployment would have them), into the current month, and into a month with
no partition (they sit in events_default). `retention --days N` with N putting the
cut-off inside last month must archive and drop exactly the two old partitions and
the old default rows, with their event_ids guards, and keep the current month and
the rollups; `restore` must bring exactly those rows back, once.
"""

import datetime
import gzip
import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid

import pytest

from helpers import mailpipe as mpl

UTC = datetime.timezone.utc


def add_months(day, n):
    """The first day of the month n months after day's month (n may be negative)."""
    m = day.year * 12 + day.month - 1 + n
    return datetime.date(m // 12, m % 12 + 1, 1)


def epoch(day, seconds=0):
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) \
        + seconds


def part_name(day):
    return "events_y%04dm%02d" % (day.year, day.month)


def table_exists(mp, name):
    return mp.query("select to_regclass(%s) is not null", name)[0][0]


def read_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def archive_dir():
    d = tempfile.mkdtemp(prefix="mailpipe-archive-")
    os.rmdir(d)          # retention creates it
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def scenario(mp):
    """Posts the events; returns what the steps below share."""
    now = datetime.datetime.now(UTC)
    this_month = now.date().replace(day=1)
    last_month = add_months(this_month, -1)
    m2, m3, m8 = add_months(this_month, -2), add_months(this_month, -3), \
        add_months(this_month, -8)
    for month in (m3, m2):
        mp.query("select mailpipe_create_partition(%s::date)", month.isoformat())
        assert table_exists(mp, part_name(month))
    assert not table_exists(mp, part_name(m8)), "month -8 must have no partition"

    tag = "retention_%s" % uuid.uuid4().hex[:10]
    cat = "ret-" + tag
    when = {
        "m3": [epoch(m3, 3600), epoch(m3, 9 * 86400 + 5), epoch(m3, 26 * 86400 + 7)],
        # the last second of the month belongs to it
        "m2": [epoch(m2, 60), epoch(m2, 86400 * 3), epoch(m2, 86400 * 11 + 1),
               epoch(last_month) - 1],
        "m8": [epoch(m8, 7200), epoch(m8, 86400 * 20)],
        "now": [int(now.timestamp()) - 120, int(now.timestamp()) - 60],
    }
    ids = {}
    batch = []
    for key, stamps in when.items():
        ids[key] = set()
        for i, ts in enumerate(stamps):
            ev = mpl.new_event(tag, timestamp=ts, category=[cat, "newsletter"],
                               email="r%d-%s@example.com" % (i, key),
                               event="delivered" if i % 2 == 0 else "open")
            ids[key].add(ev["sg_event_id"])
            batch.append(ev)
    mpl.assert_accepted(mp.post_webhook(batch), len(batch))
    mp.wait_rows(tag, len(batch))
    mp.wait_sink_idle()

    # the cut-off lands inside last month: months -2 and -3 go, last month stays
    days = int((now - datetime.datetime(last_month.year, last_month.month, 1,
                                        tzinfo=UTC)).total_seconds() // 86400)
    return {
        "tag": tag, "cat": cat, "ids": ids, "days": days, "total": len(batch),
        "this_month": this_month, "last_month": last_month, "m2": m2, "m3": m3, "m8": m8,
        "rows_before": mp.event_rows(tag), "stats_before": stats(mp, cat, m8),
        "guards_before": guards(mp, tag),
    }


def stats(mp, cat, first):
    """The category's daily stats from first to today through the read API."""
    r = mp.request("GET", "/v3/categories/stats",
                   headers={"Authorization": "Bearer " + mp.api_key},
                   params={"categories": cat, "start_date": first.isoformat()})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()


def stats_totals(body):
    out = {}
    for day in body:
        for k, v in day["stats"][0]["metrics"].items():
            out[k] = out.get(k, 0) + v
    return out


def guards(mp, tag):
    return {r[0] for r in mp.query(
        "select sg_event_id from event_ids where starts_with(sg_event_id, %s)", tag + "-")}


def retention(mp, archive_dir, s, *extra, check=True):
    return mp.mailpipectl("retention", "--days", str(s["days"]), "--archive-dir", archive_dir,
                          *extra, check=check, timeout=120)


def test_retention_refuses_a_role_that_does_not_own_events(mp, scenario, archive_dir):
    p = retention(mp, archive_dir, scenario, "--database-url",
                  mp.vars["SINK_DATABASE_URL"], check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "does not own 'events'" in p.stderr and "mailpipe_writer" in p.stderr, p.stderr
    assert not os.path.exists(archive_dir)
    assert mp.count_events(scenario["tag"])[0] == scenario["total"]


def test_retention_days_zero_keeps_everything(mp, scenario, archive_dir):
    p = mp.mailpipectl("retention", "--days", "0", "--archive-dir", archive_dir)
    assert "keeping every event" in p.stdout, p.stdout
    assert not os.path.exists(archive_dir)


def test_dry_run_changes_nothing(mp, scenario, archive_dir):
    s = scenario
    p = retention(mp, archive_dir, s, "--dry-run")
    out = p.stdout
    assert "would archive 3 rows of %s" % part_name(s["m3"]) in out, out
    assert "would archive 4 rows of %s" % part_name(s["m2"]) in out, out
    assert "of events_default" in out, out
    assert part_name(s["last_month"]) not in out and part_name(s["this_month"]) not in out
    assert "nothing changed" in out, out
    assert not os.path.exists(archive_dir), "a dry run wrote files"
    assert table_exists(mp, part_name(s["m3"])) and table_exists(mp, part_name(s["m2"]))
    assert mp.event_rows(s["tag"]) == s["rows_before"]
    assert guards(mp, s["tag"]) == s["guards_before"]


def test_retention_archives_then_drops_the_old_partitions(mp, scenario, archive_dir):
    s = scenario
    p = retention(mp, archive_dir, s)
    assert "2 partitions dropped" in p.stdout and "rollups kept" in p.stdout, p.stdout
    # progress: one line per table, with its rate
    for name in (part_name(s["m3"]), part_name(s["m2"]), "events_default"):
        assert any(name in l and "rows/s" in l for l in p.stderr.splitlines()), p.stderr

    assert not table_exists(mp, part_name(s["m3"]))
    assert not table_exists(mp, part_name(s["m2"]))
    assert table_exists(mp, part_name(s["last_month"]))
    assert table_exists(mp, part_name(s["this_month"]))
    assert table_exists(mp, "events_default")

    left = mp.event_rows(s["tag"])
    assert set(left) == s["ids"]["now"], "only the current month's rows stay"
    assert left == {k: v for k, v in s["rows_before"].items() if k in s["ids"]["now"]}
    assert guards(mp, s["tag"]) == s["ids"]["now"], "the old guards are gone"
    # the rollups are kept
    assert stats(mp, s["cat"], s["m8"]) == s["stats_before"]

    assert stat.S_IMODE(os.stat(archive_dir).st_mode) & 0o027 == 0, "not open to others"
    names = sorted(os.listdir(archive_dir))
    assert not [n for n in names if n.endswith(".tmp")], names
    defaults = [n for n in names if n.startswith("events_default_before_")
                and n.endswith(".jsonl.gz")]
    assert len(defaults) == 1, names
    columns = [r[0] for r in mp.query(
        "select column_name from information_schema.columns where table_name = 'events'"
        " order by ordinal_position")]
    for base, key in ((part_name(s["m3"]), "m3"), (part_name(s["m2"]), "m2"),
                      (defaults[0][:-len(".jsonl.gz")], "m8")):
        data = os.path.join(archive_dir, base + ".jsonl.gz")
        manifest = os.path.join(archive_dir, base + ".manifest.json")
        for path in (data, manifest):
            assert stat.S_IMODE(os.stat(path).st_mode) in (0o600, 0o640), path
        with open(manifest, encoding="utf-8") as f:
            m = json.load(f)
        lines = read_lines(data)
        assert m["format"] == "mailpipe-archive/1" and m["table"] == "events"
        assert m["file"] == base + ".jsonl.gz" and m["compression"] == "gzip"
        assert m["rows"] == len(lines) and m["bytes"] == os.path.getsize(data)
        assert m["sha256"] == sha256_of(data)
        assert m["schema_version"] >= 15 and m["created_at"].endswith("Z")
        assert all(list(line) == columns for line in lines), "every column, in order"
        mine = [l for l in lines if l["sg_event_id"].startswith(s["tag"] + "-")]
        assert {l["sg_event_id"] for l in mine} == s["ids"][key]
        for l in mine:
            assert l["raw"]["sg_event_id"] == l["sg_event_id"]
            assert l["category"] == [s["cat"], "newsletter"]
        if key == "m8":
            assert m["partition"] == "events_default" and m["range_from"] is None
        else:
            month = s[key]
            assert m["partition"] == part_name(month) and m["rows"] == len(s["ids"][key])
            assert m["range_from"] == "%sT00:00:00Z" % month.isoformat()
            assert m["range_to"] == "%sT00:00:00Z" % add_months(month, 1).isoformat()
            times = sorted(l["event_time"] for l in lines)
            first = datetime.datetime.fromisoformat(times[0])
            assert datetime.datetime.fromisoformat(
                m["min_event_time"].replace("Z", "+00:00")) == first


def archive_of(archive_dir, month):
    return os.path.join(archive_dir, part_name(month) + ".jsonl.gz")


def test_a_corrupt_archive_is_refused(mp, scenario, archive_dir, tmp_path):
    s = scenario
    src = archive_of(archive_dir, s["m2"])
    data = tmp_path / os.path.basename(src)
    manifest = tmp_path / (part_name(s["m2"]) + ".manifest.json")
    shutil.copy(src, data)
    shutil.copy(src.replace(".jsonl.gz", ".manifest.json"), manifest)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    p = mp.mailpipectl("restore", str(data), check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "does not match its manifest" in p.stderr, p.stderr
    assert not table_exists(mp, part_name(s["m2"])), "refused before touching the database"

    # an intact file whose manifest claims other rows is refused too
    shutil.copy(src, data)
    m = json.loads(manifest.read_text())
    m["rows"] += 1
    manifest.write_text(json.dumps(m))
    p = mp.mailpipectl("restore", str(manifest), check=False)
    assert p.returncode == 1 and "its manifest says" in p.stderr, p.stderr
    assert mp.count_events(s["tag"])[0] == len(s["ids"]["now"])


def test_restore_brings_back_exactly_the_archived_rows(mp, scenario, archive_dir):
    s = scenario
    m3 = archive_of(archive_dir, s["m3"])
    p = mp.mailpipectl("restore", "--dry-run", m3)
    assert "3 would be restored" in p.stdout, p.stdout
    assert not table_exists(mp, part_name(s["m3"])), "a dry run created the partition"
    assert mp.count_events(s["tag"])[0] == len(s["ids"]["now"])

    p = mp.mailpipectl("restore", m3)
    assert "3 restored, 0 already present" in p.stdout and "created" in p.stdout, p.stdout
    p = mp.mailpipectl("restore", archive_of(archive_dir, s["m2"])
                       .replace(".jsonl.gz", ".manifest.json"))
    assert "4 restored" in p.stdout, p.stdout
    default = [n for n in os.listdir(archive_dir)
               if n.startswith("events_default_before_") and n.endswith(".jsonl.gz")][0]
    mp.mailpipectl("restore", os.path.join(archive_dir, default))

    assert table_exists(mp, part_name(s["m3"])) and table_exists(mp, part_name(s["m2"]))
    assert mp.event_rows(s["tag"]) == s["rows_before"], "every column as it was"
    assert guards(mp, s["tag"]) == s["guards_before"]
    in_part = mp.query("select count(*) from %s where starts_with(sg_event_id, %%s)"
                       % part_name(s["m3"]), s["tag"] + "-")[0][0]
    assert in_part == 3, "restored into its own partition"
    # the API and the rollups agree with the restored events
    body = stats(mp, s["cat"], s["m8"])
    assert body == s["stats_before"]
    totals = stats_totals(body)
    delivered = mp.query("select count(*) from events where starts_with(sg_event_id, %s)"
                         " and event = 'delivered'", s["tag"] + "-")[0][0]
    opens = mp.query("select count(*) from events where starts_with(sg_event_id, %s)"
                     " and event = 'open'", s["tag"] + "-")[0][0]
    assert (totals["delivered"], totals["opens"]) == (delivered, opens)

    # restoring again stores nothing twice
    p = mp.mailpipectl("restore", m3)
    assert "0 restored, 3 already present" in p.stdout and "existed" in p.stdout, p.stdout
    assert mp.count_events(s["tag"]) == (s["total"], s["total"])
