"""tests/valgrind/workload.py RUN_DIR: a short workload against a running stack
(started by tests/valgrind/run): signed webhook batches, mails through the
simulator, read API calls, /metrics. Waits until the events are stored and the
mails are settled, so every program has walked its main paths before it is
stopped. Exits non-zero if the stack does not answer as it should."""

import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from helpers import mailpipe as mpl  # noqa: E402


def main():
    run_dir = sys.argv[1]
    repo = os.path.abspath(os.path.join(HERE, "..", ".."))
    st = mpl.Stack(repo, run_dir, dict(os.environ))
    st.load_env()
    tag = "vg_" + uuid.uuid4().hex[:10]
    mpl.wait_until(lambda: st.request("GET", "/healthz", timeout=30).status_code == 200,
                   timeout=300, desc="/healthz")
    # webhook: 5 signed batches of 20 events, one unsigned (401), one bad JSON (400)
    for b in range(5):
        batch = [mpl.new_event(tag, None, sg_event_id="%s-%d-%d" % (tag, b, i))
                 for i in range(20)]
        r = st.post_webhook(batch, timeout=120)
        assert r.status_code == 200, (r.status_code, r.text[:300])
    r = st.post_webhook([mpl.new_event(tag)], sign=False, timeout=120)
    assert r.status_code == 401, r.status_code
    r = st.post_webhook(b"[{", timeout=120)
    assert r.status_code == 400, r.status_code
    # mails: 3 to the simulator, one sandbox, one invalid, one without a key
    mids = []
    for i in range(3):
        body = mpl.mail_body(marker=tag, categories=["vg"], custom_args={"n": str(i)})
        r = st.send_mail(body, timeout=120)
        assert r.status_code == 202, (r.status_code, r.text[:300])
        mids.append(r.headers["X-Message-Id"])
    assert st.send_mail(mpl.mail_body(sandbox=True), timeout=120).status_code == 200
    assert st.send_mail({"subject": 1}, timeout=120).status_code == 400
    assert st.send_mail(mpl.mail_body(), key=False, timeout=120).status_code == 401
    # the read API
    h = {"Authorization": "Bearer " + st.api_key}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for path in ("/v3/stats?start_date=" + today,
                 "/v3/categories/stats?start_date=%s&categories=vg" % today,
                 "/v3/messages?limit=5", "/v3/messages?query=status%3D%22delivered%22",
                 "/v3/messages/" + mids[0], "/v3/suppression/bounces",
                 "/v3/suppression/bounces/nobody@example.com",
                 "/mailpipe/v1/events/per_minute?minutes=10", "/metrics", "/readyz",
                 "/v3/stats"):
        r = st.request("GET", path, headers=h, timeout=120)
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
    assert st.request("GET", "/v3/stats?start_date=" + today, timeout=120).status_code == 401
    # everything settled: 100 events stored, the mails sent
    mpl.wait_until(lambda: st.count_events(tag)[0] >= 100, timeout=600, interval=1,
                   desc="100 events stored")
    for mid in mids:
        mpl.wait_until(lambda: (st.message(mid) or {}).get("status") not in
                       (None, "queued", "sending", "retrying"), timeout=600, interval=1,
                       desc="mail %s settled" % mid)
    # the simulator's events for those mails reach the sink too
    time.sleep(10)
    r = st.request("GET", "/metrics", headers=h, timeout=120)
    assert r.status_code == 200, r.status_code
    print("workload done: 100 events stored, %d mails settled" % len(mids))


if __name__ == "__main__":
    main()
