"""Bad input: invalid events in a signed batch go to the dead letters while
the rest is stored; malformed bodies are 400 and leave no trace; limits,
methods and paths answer with JSON errors; ingest survives all of it.
"""

import re
import uuid

import pytest
import requests

from helpers.mailpipe import (WEBHOOK_PATH, assert_accepted, assert_json_error,
                              encode, wait_until, DROP)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def ingest_pid(mp):
    """ingest's PID before this module's abuse: it must be the same at the end."""
    return mp.wait_pid("ingest")


def mentions(text, field):
    """text names field quoted, as the error style asks: 'timestamp'."""
    return re.search(r"['\"]%s['\"]" % re.escape(field), text or "") is not None


def assert_no_trace(mp, tag):
    assert mp.kafka_find(tag + "-") == [], "a rejected body reached Kafka"
    mp.wait_sink_idle()
    assert mp.count_events(tag)[0] == 0, "a rejected body was stored in events"
    assert mp.dead_letters(tag + "-") == [], "a rejected body was stored in dead_letters"


def test_ingest_is_running(ingest_pid):
    assert ingest_pid


# (label, field the error must name, changes to a valid event)
INVALID = [
    ("no-sg-event-id", "sg_event_id", {"sg_event_id": DROP}),
    ("empty-sg-event-id", "sg_event_id", {"sg_event_id": ""}),
    ("object-sg-event-id", "sg_event_id", {"sg_event_id": {"id": "x"}}),
    ("no-event", "event", {"event": DROP}),
    ("null-event", "event", {"event": None}),
    ("array-event", "event", {"event": ["delivered"]}),
    ("abc-timestamp", "timestamp", {"timestamp": "abc"}),
    ("no-timestamp", "timestamp", {"timestamp": DROP}),
    ("null-timestamp", "timestamp", {"timestamp": None}),
    ("empty-timestamp", "timestamp", {"timestamp": ""}),
    ("bool-timestamp", "timestamp", {"timestamp": True}),
]


def test_invalid_events_are_dead_lettered_and_the_rest_stored(mp, tag, make_event):
    valid = [make_event(), make_event(event="open"), make_event(event="click", url="https://x.example/")]
    bad = {}
    for label, field, changes in INVALID:
        marker = "%s-bad-%s" % (tag, label)
        ev = make_event(mp_test_marker=marker, **changes)
        bad[label] = (field, marker, ev)
    batch = [valid[0]] + [b[2] for b in bad.values()][:5] + [valid[1]] \
        + [b[2] for b in bad.values()][5:] + [valid[2]]
    r = mp.post_webhook(batch)
    assert_accepted(r, len(batch), dead_lettered=len(bad))

    mp.wait_rows(tag, len(valid))
    rows = mp.event_rows(tag)
    assert sorted(rows) == sorted(e["sg_event_id"] for e in valid), \
        "events holds other than the valid events: %r" % sorted(rows)
    assert all(len(v) == 1 for v in rows.values())

    problems = []
    for label, (field, marker, _ev) in bad.items():
        try:
            dls = wait_until(lambda m=marker: mp.dead_letters(m), 30,
                             desc="dead letter for %s" % label)
        except AssertionError as e:
            problems.append("%s: no dead_letters row (%s)" % (label, e))
            continue
        if len(dls) != 1:
            problems.append("%s: %d dead_letters rows" % (label, len(dls)))
        if not any(mentions(err, field) for _t, err, _p in dls):
            problems.append("%s: error %r does not name %r"
                            % (label, [d[1] for d in dls], field))
    assert not problems, "\n".join(problems)


# valid JSON events that ingest may accept but PostgreSQL cannot store:
# "\u0000" (neither jsonb nor text), a year beyond timestamptz's range, a key
# longer than a btree index entry. Each must end up stored once or as a dead
# letter, and must not block the events after it in its partition.
POISON = {
    "nul-escape": {"reason": "550 bad\u0000byte"},
    "far-future-timestamp": {"timestamp": 10**17},
    "huge-sg-event-id": {"sg_event_id": "@TAG@-" + uuid.UUID(int=0).hex + "".join(
        uuid.uuid5(uuid.NAMESPACE_DNS, str(i)).hex for i in range(200))},
}


@pytest.mark.parametrize("kind", sorted(POISON))
def test_poison_event_does_not_block_its_partition(mp, tag, make_event, kind):
    key = {"sg_message_id": "poison%s.filterdrecv-1.0" % uuid.uuid4().hex,
           "mailpipe_message_id": "poison-%s" % uuid.uuid4().hex}
    marker = "%s-poison-%s" % (tag, kind)
    changes = {k: (v.replace("@TAG@", tag) if isinstance(v, str) else v)
               for k, v in POISON[kind].items()}
    poison = make_event(key, mp_test_marker=marker, **changes)
    r = mp.post_webhook([poison])
    assert r.status_code == 200, r.text
    after = [make_event(key) for _ in range(5)]
    assert_accepted(mp.post_webhook(after), 5)
    for ev in after:
        wait_until(lambda e=ev: mp.query("select 1 from events where sg_event_id = %s",
                                         e["sg_event_id"]), 30,
                   desc="event after the poison one")

    def poison_kept():
        stored = mp.query("select count(*) from events where sg_event_id = %s",
                          poison["sg_event_id"])[0][0]
        if stored > 1:
            raise AssertionError("poison event stored %d times" % stored)
        return stored == 1 or mp.dead_letters(marker)
    wait_until(poison_kept, 30, desc="poison event stored once or dead-lettered")


# name -> body(make_event, tag)
MALFORMED = {
    "not-json": lambda mk, tag: b"this is not json " + tag.encode(),
    "object-not-array": lambda mk, tag: encode(mk()),
    "non-object-element": lambda mk, tag: encode([mk(), 5]),
    "array-element": lambda mk, tag: encode([mk(), [mk()]]),
    "null-element": lambda mk, tag: encode([mk(), None]),
    "deep-nesting": lambda mk, tag: b"[" + encode(mk()) + b"," + b"[" * 100000
    + b"]" * 100000 + b"]",
    "deep-nesting-unterminated": lambda mk, tag: b"[" * 100000,
    "invalid-utf8": lambda mk, tag: encode([mk(reason="@@BAD@@")]).replace(b"@@BAD@@", b"\xff\xfe\xfd"),
    "overlong-utf8": lambda mk, tag: encode([mk(reason="@@BAD@@")]).replace(b"@@BAD@@", b"\xc0\xaf"),
    "nul-in-string": lambda mk, tag: encode([mk(reason="@@BAD@@")]).replace(b"@@BAD@@", b"a\x00b"),
    "nul-after-array": lambda mk, tag: encode([mk()]) + b"\x00",
    "trailing-garbage": lambda mk, tag: encode([mk()]) + b"xyz",
    "two-arrays": lambda mk, tag: encode([mk()]) + encode([mk()]),
    "truncated": lambda mk, tag: encode([mk(), mk()])[:-20],
    "empty-body": lambda mk, tag: b"",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_body_is_400_and_not_stored(mp, ingest_pid, tag, make_event, name):
    body = MALFORMED[name](make_event, tag)
    r = mp.post_webhook(body)
    assert_json_error(r, 400)
    assert_no_trace(mp, tag)


def test_event_too_large_for_kafka_is_dead_lettered_and_the_rest_stored(mp, tag, make_event):
    # One event of 2 MiB can never fit in a Kafka message (1 MB by default). A 4xx or 5xx
    # would make SendGrid retry the whole batch for a day and then drop it, valid events
    # included: instead the big one is dead-lettered (its head kept) and the rest stored.
    small = make_event()
    big = make_event(note="x" * (2 * MIB))
    r = mp.post_webhook([small, big])
    assert r.status_code == 200, r.text
    assert r.json()["dead_lettered"] == 1, r.text
    wait_until(lambda: mp.query("select 1 from events where sg_event_id = %s",
                                small["sg_event_id"]), 30, desc="the small event stored")
    dls = wait_until(lambda: mp.query(
        "select error, length(payload) from dead_letters where position(%s in payload) > 0",
        big["sg_event_id"].encode()), 30, desc="the big event dead-lettered")
    assert len(dls) == 1, dls
    error, length = dls[0]
    assert "over the" in error and "truncated" in error, error
    assert 0 < length <= 65536, length
    assert mp.query("select count(*) from events where sg_event_id = %s",
                    big["sg_event_id"])[0][0] == 0


def test_body_over_8_mib_is_413_json(mp, ingest_pid, tag, make_event):
    body = encode([make_event(note="x" * (8 * MIB))])
    assert len(body) > 8 * MIB
    try:
        r = mp.post_webhook(body, timeout=60)
    except requests.ConnectionError as e:
        pytest.fail("connection broken instead of a 413 answer: %s" % e)
    assert_json_error(r, 413)
    assert_no_trace(mp, tag)


def test_get_on_webhook_is_405_json(mp, ingest_pid):
    assert_json_error(mp.request("GET", WEBHOOK_PATH), 405)


def test_unknown_path_is_404_json(mp, ingest_pid, make_event):
    assert_json_error(mp.request("GET", "/no/such/path"), 404)
    assert_json_error(mp.post_webhook([make_event()], path="/webhooks/sendgrid-nope"), 404)


def test_ingest_survived(mp, ingest_pid):
    assert mp.pid_of("ingest") == ingest_pid, "ingest was restarted (crashed?)"
    r = mp.request("GET", "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
