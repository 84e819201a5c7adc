"""Every field shape SendGrid really sends round-trips into `events`.

tests/fixtures/events/*.json hold one realistic event each. They are posted
in one signed batch (sg_event_id prefixed with this module's tag, nothing
else changed); each must be stored once with `raw` equal to what was posted
and the typed columns derived from it.
"""

import glob
import json
import os
import uuid

import pytest

from helpers.mailpipe import (assert_accepted, encode, expected_category,
                              expected_event_time)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "events")
NAMES = sorted(os.path.basename(p)[:-len(".json")]
               for p in glob.glob(os.path.join(FIXTURES, "*.json")))


def load(name):
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def posted(mp):
    """Post all fixtures in one batch; return ({name: event}, {name: [rows]})."""
    assert len(NAMES) >= 25, "fixtures missing in %s" % FIXTURES
    tag = "shapes_" + uuid.uuid4().hex[:10]
    events = {}
    for name in NAMES:
        ev = load(name)
        ev["sg_event_id"] = "%s-%s" % (tag, ev["sg_event_id"])
        events[name] = ev
    resp = mp.post_webhook(encode(list(events.values())))
    assert_accepted(resp, len(events))
    mp.wait_rows(tag, len(events), timeout=30)
    mp.wait_sink_idle()
    rows = mp.event_rows(tag)
    return events, {name: rows.get(ev["sg_event_id"], []) for name, ev in events.items()}


def test_fixtures_cover_the_documented_shapes():
    shapes = {n: load(n) for n in NAMES}
    evs = list(shapes.values())
    assert any(isinstance(e.get("pool"), dict) for e in evs)
    for tls in (1, "1", True):
        assert any(type(e.get("tls")) is type(tls) and e.get("tls") == tls for e in evs), tls
    assert any(e.get("attempt") == "5" for e in evs)
    assert any(type(e.get("attempt")) is int for e in evs)
    assert {"bounce", "blocked"} <= {e.get("type") for e in evs if e["event"] == "bounce"}
    assert any(e.get("sg_machine_open") is True for e in evs)
    assert any(isinstance(e.get("url_offset"), dict) for e in evs)
    assert any(type(e.get("url_offset")) is int for e in evs)
    assert any(isinstance(e.get("asm_group_id"), int) for e in evs)
    assert any(e["event"] == "account_status_change" and "email" not in e for e in evs)
    cats = [e["category"] for e in evs if "category" in e]
    assert any(isinstance(c, str) for c in cats)
    assert [] in cats and [""] in cats and any(len(c) > 1 for c in cats if isinstance(c, list))
    assert any(isinstance(e["timestamp"], str) for e in evs)
    assert any(isinstance(e["timestamp"], int) and e["timestamp"] >= 10**12 for e in evs)
    assert any("mailpipe_message_id" in e for e in evs)
    assert any(e.get("smtp-id") == "" for e in evs)
    assert any("sg_message_id" not in e for e in evs)
    known = {"processed", "dropped", "delivered", "deferred", "bounce", "open", "click",
             "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe",
             "account_status_change"}
    assert known <= {e["event"] for e in evs}
    assert any(e["event"] not in known for e in evs)


@pytest.mark.parametrize("name", NAMES)
def test_shape_round_trips(posted, name):
    events, rows = posted
    ev = events[name]
    assert len(rows[name]) == 1, "%s stored %d times" % (name, len(rows[name]))
    row = rows[name][0]

    assert row["raw"] == ev, "raw differs from the posted event"
    assert row["event"] == ev["event"]
    assert row["email"] == ev.get("email")
    assert row["event_time"] == expected_event_time(ev["timestamp"]), ev["timestamp"]
    assert row["sg_message_id"] == ev.get("sg_message_id")
    assert row["message_id"] == ev.get("mailpipe_message_id")
    for col in ("reason", "status", "type", "url"):
        assert row[col] == ev.get(col), col
    if ev.get("category") == []:
        # the spec does not say whether [] is stored as '{}' or NULL
        assert row["category"] in ([], None)
    else:
        assert row["category"] == expected_category(ev.get("category"))
    assert row["received_at"] is not None
    assert row["kafka_partition"] is not None and row["kafka_offset"] is not None
