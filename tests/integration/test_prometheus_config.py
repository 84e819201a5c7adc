"""ops/prometheus and ops/grafana against the real tools and the real stack.

- promtool (Debian package `prometheus`) checks prometheus.yml and alerts.yml and runs the
  rule unit tests of alerts_test.yml (each alert fires on a failing synthetic series and
  stays silent on healthy ones);
- every PromQL expression of the Grafana dashboard parses (promtool, as recording rules);
- every metric name the alerts and the dashboard use is served by the live stack's
  GET /metrics (scraped with a metrics.read key, as Prometheus would);
- the dashboard JSON is well formed (ids, datasources, targets) and every SQL panel runs
  against the live stack's PostgreSQL as mailpipe_reader, Grafana's macros substituted.

The tests that do not need the stack do not request the `mp` fixture, so
`tests/run -k prometheus_config` starts a stack only for the live ones.
"""

import json
import os
import re
import shutil
import subprocess
import time

import psycopg2
import pytest
import yaml

from helpers import mailpipe as mpl

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROM_DIR = os.path.join(REPO, "ops", "prometheus")
DASHBOARD = os.path.join(REPO, "ops", "grafana", "mailpipe.json")

PROM_DS = "${DS_PROMETHEUS}"
PG_DS = "${DS_POSTGRES}"

# Names in PromQL that are not mailpipe's: Prometheus' own series and functions.
NOT_MAILPIPE = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool(*args, cwd=None):
    exe = shutil.which("promtool")
    assert exe, "promtool not found: ops/install-deps installs Debian's 'prometheus' package"
    proc = subprocess.run([exe] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def alert_rules():
    with open(os.path.join(PROM_DIR, "alerts.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def all_panels(dash):
    for p in dash["panels"]:
        yield p
        for q in p.get("panels", []):
            yield q


def data_panels(dash):
    return [p for p in all_panels(dash) if p.get("type") != "row"]


def dashboard_promql(dash):
    """(panel title, expr) of every Prometheus target, $__rate_interval made concrete."""
    out = []
    for p in data_panels(dash):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append((p["title"], t["expr"].replace("$__rate_interval", "1m")))
    return out


def dashboard_sql(dash):
    return [(p["title"], t["rawSql"]) for p in data_panels(dash)
            for t in p.get("targets", []) if "rawSql" in t]


METRIC_RE = re.compile(r"\b(mailpipe_[a-z0-9_]+|up)\b(?!\s*\()")


def metric_names(expr):
    """Metric names in a PromQL expression (label values and strings removed first)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(METRIC_RE.findall(expr)) - NOT_MAILPIPE


def base_name(name, served):
    """mailpipe_x_bucket -> mailpipe_x when that histogram is what /metrics serves."""
    for suf in HISTOGRAM_SUFFIXES:
        if name.endswith(suf) and name[:-len(suf)] in served:
            return name[:-len(suf)]
    return name


# --- promtool -------------------------------------------------------------------------------
def test_prometheus_config_checks(tmp_path):
    # prometheus.yml names its key and CA relative to its own directory (as installed in
    # /etc/prometheus); promtool wants them to exist
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(os.path.join(PROM_DIR, name), tmp_path / name)
    (tmp_path / "mailpipe.key").write_text("mp_example\n")
    (tmp_path / "mailpipe-ca.pem").write_text("")
    rc, out = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert rc == 0, out
    assert "SUCCESS" in out, out

    with open(os.path.join(PROM_DIR, "prometheus.yml"), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    [job] = [j for j in cfg["scrape_configs"] if j["job_name"] == "mailpipe"]
    assert job["honor_labels"] is True, "mailpipe's process/instance labels must be kept"
    assert job["scheme"] == "https" and job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    assert job["tls_config"]["ca_file"]
    assert job.get("scrape_interval", cfg["global"]["scrape_interval"]) == "15s"
    assert "alerts.yml" in cfg["rule_files"]


def test_alert_rules_check():
    rc, out = promtool("check", "rules", "alerts.yml", cwd=PROM_DIR)
    assert rc == 0, out
    rules = alert_rules()
    assert len(rules) >= 12
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names: %s" % names
    for r in rules:
        assert r.get("for"), "%s has no 'for'" % r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"].get("summary") and r["annotations"].get("description"), \
            r["alert"]


def test_alert_rules_unit_tests():
    rc, out = promtool("test", "rules", "alerts_test.yml", cwd=PROM_DIR)
    assert rc == 0 and "SUCCESS" in out, out
    # every alert has a case in which it fires
    with open(os.path.join(PROM_DIR, "alerts_test.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    fired = {c["alertname"] for t in doc["tests"] for c in t["alert_rule_test"]
             if c.get("exp_alerts")}
    silent = {c["alertname"] for t in doc["tests"] for c in t["alert_rule_test"]
              if not c.get("exp_alerts")}
    every = {r["alert"] for r in alert_rules()}
    assert every - fired == set(), "alerts never shown firing: %s" % (every - fired)
    assert every - silent == set(), "alerts never shown silent: %s" % (every - silent)


def test_alert_rules_unit_tests_can_fail(tmp_path):
    """The unit tests catch a broken rule: raise one threshold and they fail."""
    with open(os.path.join(PROM_DIR, "alerts.yml"), encoding="utf-8") as f:
        text = f.read()
    broken = text.replace("expr: mailpipe_up == 0", "expr: mailpipe_up == 2")
    assert broken != text
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(os.path.join(PROM_DIR, "alerts_test.yml"), tmp_path / "alerts_test.yml")
    rc, out = promtool("test", "rules", "alerts_test.yml", cwd=str(tmp_path))
    assert rc != 0 and "MailpipeProcessDown" in out, out


def test_dashboard_promql_parses(tmp_path):
    exprs = dashboard_promql(dashboard())
    assert len(exprs) >= 12
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": "dashboard:panel_%d" % i, "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    (tmp_path / "dash_rules.yml").write_text(yaml.safe_dump(rules))
    rc, out = promtool("check", "rules", str(tmp_path / "dash_rules.yml"))
    assert rc == 0, "a dashboard PromQL expression does not parse:\n%s" % out


# --- the dashboard JSON -----------------------------------------------------------------------
def test_dashboard_json_shape():
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["uid"] and dash["title"]
    inputs = {i["name"]: i["pluginId"] for i in dash["__inputs"]}
    assert inputs == {"DS_PROMETHEUS": "prometheus",
                      "DS_POSTGRES": "grafana-postgresql-datasource"}
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_POSTGRES"]["type"] == "datasource"

    ids = [p["id"] for p in all_panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids are not unique: %s" % ids
    kinds = {"prometheus": 0, "postgres": 0}
    for p in data_panels(dash):
        ds = p.get("datasource") or {}
        assert ds.get("uid") in (PROM_DS, PG_DS), "panel %r: datasource %r" % (p["title"], ds)
        assert p.get("targets"), "panel %r has no target" % p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            tds = t.get("datasource", ds)
            assert tds.get("uid") == ds["uid"], p["title"]
            if ds["uid"] == PROM_DS:
                assert t.get("expr"), "panel %r: a Prometheus target without expr" % p["title"]
            else:
                assert t.get("rawSql") and t.get("rawQuery"), p["title"]
        kinds["prometheus" if ds["uid"] == PROM_DS else "postgres"] += 1
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
    assert kinds["prometheus"] >= 10 and kinds["postgres"] >= 3, kinds


def grafana_sql(sql, start, end):
    """Grafana's PostgreSQL macros as Grafana expands them (time range start..end)."""
    frm = "'%s'" % start.strftime("%Y-%m-%dT%H:%M:%SZ")
    to = "'%s'" % end.strftime("%Y-%m-%dT%H:%M:%SZ")
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: "%s BETWEEN %s AND %s"
                 % (m.group(1), frm, to), sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    assert "$__" not in sql and "${" not in sql, "unexpanded macro in %r" % sql
    return sql


# --- against the live stack ------------------------------------------------------------------
def test_dashboard_sql_runs_as_reader(mp):
    import datetime
    end = datetime.datetime.now(datetime.timezone.utc)
    start = end - datetime.timedelta(days=7)
    # some data in the rollups, messages and dead letters the panels read
    tag = "grafana%d" % int(time.time())
    events = [mpl.new_event(tag, None, event="delivered", category=["grafana"]),
              mpl.new_event(tag, None, event="bounce", type="bounce", reason="550 no such user")]
    mpl.assert_accepted(mp.post_webhook(events), 2)
    mp.wait_rows(tag, 2)

    queries = dashboard_sql(dashboard())
    assert queries
    conn = psycopg2.connect(mp.vars["DATABASE_URL"], user="mailpipe_reader", connect_timeout=5)
    conn.autocommit = True
    try:
        for title, sql in queries:
            with conn.cursor() as cur:
                try:
                    cur.execute(grafana_sql(sql, start, end))
                except psycopg2.Error as e:
                    pytest.fail("panel %r: %s\n%s" % (title, e, sql))
                rows = cur.fetchall()
                names = [d[0] for d in cur.description]
                if "time" in names:
                    assert names.index("time") == 0, (title, names)
                if title == "Daily funnel":
                    assert rows and names[:2] == ["time", "requests"], (title, names, rows)
    finally:
        conn.close()


def test_metric_names_served(mp):
    """Every metric the alerts and the dashboard use is on the live GET /metrics."""
    key, _ = mp.create_api_key("prometheus-%d" % int(time.time()), "metrics.read")
    # traffic for the labelled families, which appear with their first sample: a stored
    # event and a dead-lettered one, a mail sent, a delivery Kafka does not acknowledge
    tag = "promnames%d" % int(time.time())
    mpl.assert_accepted(mp.post_webhook([mpl.new_event(tag),
                                         mpl.new_event(tag, sg_event_id=mpl.DROP)]),
                        2, dead_lettered=1)
    mp.wait_rows(tag, 1)
    mp.send_ok(mpl.mail_body())
    try:
        assert mp.kafka_ctl("down").startswith("ok")
        r = mp.post_webhook([mpl.new_event(tag)], timeout=mpl.INGEST_DEADLINE_S + 10)
        assert r.status_code == 503, (r.status_code, r.text[:200])
    finally:
        restored = mp.kafka_ctl("clear")
    assert restored.startswith("ok"), restored

    wanted = set()
    for r in alert_rules():
        wanted |= metric_names(r["expr"])
    for _, e in dashboard_promql(dashboard()):
        wanted |= metric_names(e)
    assert len(wanted) >= 12, wanted

    def scrape():
        r = mp.request("GET", "/metrics", headers={"Authorization": "Bearer " + key},
                       timeout=10)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        served = set()
        for line in r.text.splitlines():
            m = re.match(r"# TYPE (\S+) ", line)
            if m:
                served.add(m.group(1))
            elif line and not line.startswith("#"):
                served.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
        missing = {n for n in wanted if base_name(n, served) not in served}
        return (served, missing) if not missing else None

    try:
        mpl.wait_until(scrape, timeout=30, interval=1, desc="every metric on /metrics")
    except AssertionError as e:
        r = mp.request("GET", "/metrics", headers={"Authorization": "Bearer " + key},
                       timeout=10)
        served = {l.split()[2] for l in r.text.splitlines() if l.startswith("# TYPE ")}
        missing = sorted(n for n in wanted if base_name(n, served) not in served)
        raise AssertionError("metrics used by alerts.yml / mailpipe.json but not served by"
                             " GET /metrics: %s\n(served: %s)\n%s"
                             % (missing, sorted(served), e)) from None
