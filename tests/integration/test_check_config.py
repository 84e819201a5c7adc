"""mailpipectl check-config, the production config example and the systemd units.

check-config needs no stack: it only loads settings, so these tests run the binary
with a clean environment and config files of their own. The units in ops/systemd are
checked with `systemd-analyze verify` when this host has it (ExecStart pointed at the
build's binaries, any warning fails), and parsed for the directives the deployment
relies on everywhere.
"""

import base64
import configparser
import os
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import mailpipe as mpl

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.environ.get("MAILPIPE_BIN_DIR") or os.path.join(REPO, "build")
EXAMPLE = os.path.join(REPO, "ops", "mailpipe.conf.example")
ENV_EXAMPLE = os.path.join(REPO, "ops", "mailpipe.env.example")
UNIT_DIR = os.path.join(REPO, "ops", "systemd")
DAEMONS = ("ingest", "query", "sink", "sender")


def public_key_b64():
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


@pytest.fixture(scope="module")
def safe_env():
    """The example's secrets with a real webhook key: a safe production setup."""
    env = mpl.parse_env_file(ENV_EXAMPLE)
    env.pop("MAILPIPE_CONFIG")
    env["MAILPIPE_WEBHOOK_PUBLIC_KEY"] = public_key_b64()
    return env


def check(*args, env=None, config=EXAMPLE):
    """Runs check-config with only PATH and env in the environment."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    full.update(env or {})
    cmd = [os.path.join(BIN_DIR, "mailpipectl"), "check-config"]
    if config is not None:
        cmd += ["--config", config]
    p = subprocess.run(cmd + list(args), env=full, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30, check=False)
    errors = [l for l in p.stdout.splitlines() if l.startswith("error: ")]
    warnings = [l for l in p.stdout.splitlines() if l.startswith("warning: ")]
    return p, errors, warnings


def test_the_example_with_its_secrets_is_safe(safe_env):
    p, errors, warnings = check(env=safe_env)
    assert p.returncode == 0 and not errors, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1].startswith("config OK"), p.stdout


def test_the_example_names_every_key():
    keys = [l.split(" = ")[0] for l in subprocess.run(
        [os.path.join(BIN_DIR, "mailpipectl"), "config"], env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()]
    assert "retention.days" in keys and "archive.dir" in keys
    with open(EXAMPLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for key in keys:
        at = [i for i, l in enumerate(lines)
              if l.startswith(key + " =") or l.startswith("# " + key + " =")]
        assert at, "the example lacks %r" % key
        # a comment explains each key (directly above it or above its group)
        assert any(lines[j].startswith("# ") and " = " not in lines[j]
                   for j in range(max(0, at[0] - 4), at[0])), "no comment near %r" % key


# (environment overrides, the key reported, a word of the message)
UNSAFE = [
    ({"MAILPIPE_WEBHOOK_VERIFY": "off"}, "webhook.verify", "verification is off"),
    ({"MAILPIPE_WEBHOOK_PUBLIC_KEY": ""}, "webhook.public_key", "empty"),
    ({"MAILPIPE_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"}, "webhook.public_key", "not a usable key"),
    ({"MAILPIPE_DATABASE_URL": "postgresql://w:Xk82jsQ0pLm3@db.example.net/mailpipe"},
     "database.url", "without TLS"),
    ({"MAILPIPE_DATABASE_URL":
      "host=10.1.2.3 dbname=mailpipe user=w password=Xk82jsQ0pLm3 sslmode=prefer"},
     "database.url", "without TLS"),
    ({"MAILPIPE_DATABASE_URL":
      "postgresql://postgres:postgres@db.example.net/mailpipe?sslmode=verify-full"},
     "database.url", "well-known password"),
    ({"MAILPIPE_REDIS_URL": "redis://:Xk82jsQ0pLm3@redis.example.net:6379/0"},
     "redis.url", "another host"),
    ({"MAILPIPE_REDIS_URL": "rediss://:Xk82jsQ0pLm3@redis.example.net:6380/0"},
     "redis.url", "not supported"),
    ({"MAILPIPE_REDIS_URL": "redis://:foobared@127.0.0.1:6379/0"},
     "redis.url", "well-known password"),
    ({"MAILPIPE_KAFKA_SECURITY_PROTOCOL": "plaintext"}, "kafka.security_protocol", "in clear"),
    ({"MAILPIPE_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext"}, "kafka.security_protocol",
     "in clear"),
    ({"MAILPIPE_KAFKA_SECURITY_PROTOCOL": ""}, "kafka.security_protocol", "in clear"),
    ({"MAILPIPE_KAFKA_SASL_PASSWORD": "changeme"}, "kafka.sasl_password", "well-known"),
    ({"MAILPIPE_SENDGRID_API_URL": "http://api.sendgrid.com"}, "sendgrid.api_url",
     "not https"),
    ({"MAILPIPE_SENDGRID_API_URL": "https://127.0.0.1:8444"}, "sendgrid.api_url",
     "simulator"),
    ({"MAILPIPE_SENDGRID_API_KEY": "SG.mailpipe-simulator"}, "sendgrid.api_key",
     "simulator"),
    ({"MAILPIPE_SENDGRID_API_KEY": ""}, "sendgrid.api_key", "empty"),
    ({"MAILPIPE_INGEST_SOCKET_MODE": "0666"}, "ingest.socket_mode", "every local user"),
    ({"MAILPIPE_QUERY_SOCKET_MODE": "0662"}, "query.socket_mode", "every local user"),
    ({"MAILPIPE_ARCHIVE_DIR": "archive"}, "archive.dir", "not an absolute path"),
    ({"MAILPIPE_ARCHIVE_DIR": ""}, "archive.dir", "not an absolute path"),
]


@pytest.mark.parametrize("overrides,key,words", UNSAFE,
                         ids=["%s-%d" % (u[1], i) for i, u in enumerate(UNSAFE)])
def test_each_unsafe_setting_is_refused_with_its_key(safe_env, overrides, key, words):
    env = dict(safe_env)
    env.update(overrides)
    p, errors, _ = check(env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert len(errors) == 1, "exactly this one problem: %r" % errors
    assert errors[0].startswith("error: %s: " % key) and words in errors[0], errors
    assert p.stdout.splitlines()[-1].startswith("config refused: 1 error"), p.stdout
    # the message says what to do, and never repeats a secret
    assert ": " in errors[0].split(": ", 2)[2], errors[0]
    for secret in ("Xk82jsQ0pLm3", "foobared", "changeme"):
        assert secret not in p.stdout + p.stderr

    # --allow KEY waives exactly that key
    p, errors, _ = check("--allow", key, env=env)
    assert p.returncode == 0 and not errors, p.stdout
    assert "1 check waived" in p.stdout, p.stdout


@pytest.mark.parametrize("overrides,key", [
    ({"MAILPIPE_RETENTION_DAYS": "0"}, "retention.days"),
    ({"MAILPIPE_LOG_LEVEL": "debug"}, "log.level"),
    ({"MAILPIPE_WEBHOOK_MAX_AGE_SECONDS": "0"}, "webhook.max_age_seconds"),
    ({"MAILPIPE_REDIS_URL": "redis://127.0.0.1:6379/0"}, "redis.url"),
    ({"MAILPIPE_DATABASE_URL": "postgresql://w:Xk82jsQ0pLm3@db.example.net/m?sslmode=require"},
     "database.url"),
    ({"MAILPIPE_KAFKA_AUTO_OFFSET_RESET": "latest"}, "kafka.auto_offset_reset"),
])
def test_warnings_do_not_refuse(safe_env, overrides, key):
    env = dict(safe_env)
    env.update(overrides)
    p, errors, warnings = check(env=env)
    assert p.returncode == 0 and not errors, p.stdout
    assert [w for w in warnings if w.startswith("warning: %s: " % key)], p.stdout
    assert "config OK (1 warning" in p.stdout, p.stdout


def test_local_services_need_no_tls(safe_env):
    env = dict(safe_env)
    env.update({"MAILPIPE_KAFKA_BROKERS": "127.0.0.1:9092,localhost:9093,[::1]:9094",
                "MAILPIPE_KAFKA_SECURITY_PROTOCOL": "",
                "MAILPIPE_DATABASE_URL": "postgresql:///mailpipe?host=/run/postgresql",
                "MAILPIPE_REDIS_URL": "unix:/run/redis/redis.sock"})
    p, errors, warnings = check(env=env)
    assert p.returncode == 0 and not errors and not warnings, p.stdout


def test_errors_come_before_warnings_and_all_are_reported(safe_env):
    env = dict(safe_env)
    env.update({"MAILPIPE_LOG_LEVEL": "debug", "MAILPIPE_WEBHOOK_VERIFY": "off",
                "MAILPIPE_SENDGRID_API_URL": "http://x.example"})
    p, errors, warnings = check(env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith(("error: ", "warning: "))]
    assert lines == errors + warnings and len(errors) == 2 and len(warnings) == 1, p.stdout


def test_bad_configs_and_bad_options(tmp_path, safe_env):
    bad = tmp_path / "bad.conf"
    bad.write_text("webhook.verify = on\nno.such.key = 1\n")
    p, errors, _ = check(env=safe_env, config=str(bad))
    assert p.returncode == 1 and errors and "bad.conf:2" in errors[0], p.stdout
    p, _, _ = check("--allow", "no.such.key", env=safe_env)
    assert p.returncode == 2 and "no check looks at" in p.stderr, p.stderr
    # MAILPIPE_CONFIG is what the daemons read without -c
    env = dict(safe_env, MAILPIPE_CONFIG=EXAMPLE)
    p, errors, _ = check(env=env, config=None)
    assert p.returncode == 0, p.stdout


# --- the systemd units ------------------------------------------------------------------

UNITS = ["mailpipe-%s.service" % d for d in DAEMONS] + [
    "mailpipe-sink@.service", "mailpipe-retention.service", "mailpipe-retention.timer"]


def parse_unit(name):
    cp = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    cp.optionxform = str
    # repeated keys (EnvironmentFile=) are kept as a list
    sections, cur = {}, None
    with open(os.path.join(UNIT_DIR, name), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                cur = sections.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            cur.setdefault(k.strip(), []).append(v.strip())
    return sections


@pytest.mark.parametrize("name", [u for u in UNITS if u.endswith(".service")])
def test_service_units_are_hardened(name):
    svc = parse_unit(name)["Service"]
    want = {"Restart": "on-failure", "User": "mailpipe", "ProtectSystem": "strict",
            "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes"}
    for k, v in want.items():
        assert svc.get(k) == [v], "%s: %s=%r, want %r" % (name, k, svc.get(k), v)
    assert "/etc/mailpipe/mailpipe.env" in svc["EnvironmentFile"], name
    exe = svc["ExecStart"][0].split()[0]
    assert os.path.basename(exe) in DAEMONS + ("mailpipectl",), exe
    assert os.access(os.path.join(BIN_DIR, os.path.basename(exe)), os.X_OK), exe
    rw = svc.get("ReadWritePaths", [])
    if name.startswith(("mailpipe-ingest", "mailpipe-query")):
        assert rw == ["/run/mailpipe"] and svc["RuntimeDirectory"] == ["mailpipe"], name
        assert svc.get("RuntimeDirectoryPreserve") == ["yes"], "the other app's socket stays"
    elif name == "mailpipe-retention.service":
        assert rw == ["/var/lib/mailpipe/archive"], name
        assert "retention" in svc["ExecStart"][0]
    else:
        assert rw == [], "%s writes nothing locally" % name


def test_paths_agree_with_the_config_example():
    conf = {}
    with open(EXAMPLE, encoding="utf-8") as f:
        for line in f:
            if " = " in line and not line.startswith("#"):
                k, _, v = line.strip().partition(" = ")
                conf[k] = v
    ret = parse_unit("mailpipe-retention.service")["Service"]
    assert ret["ReadWritePaths"] == [conf["archive.dir"]]
    for app in ("ingest", "query"):
        assert os.path.dirname(conf[app + ".socket"]) == "/run/mailpipe"
        assert int(conf[app + ".socket_mode"], 8) & 0o002 == 0


def test_retention_timer_is_daily():
    timer = parse_unit("mailpipe-retention.timer")
    assert timer["Timer"]["Unit"] == ["mailpipe-retention.service"]
    assert timer["Timer"]["Persistent"] == ["true"]
    assert timer["Timer"]["OnCalendar"][0].startswith("*-*-* ")
    assert timer["Install"]["WantedBy"] == ["timers.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="no systemd-analyze on this host")
def test_systemd_analyze_verify(tmp_path):
    for name in UNITS:
        with open(os.path.join(UNIT_DIR, name), encoding="utf-8") as f:
            text = f.read()
        # the units name the installed binaries: point them at the build's
        (tmp_path / name).write_text(text.replace("/opt/mailpipe/bin/", BIN_DIR + "/"))
    p = subprocess.run(["systemd-analyze", "verify"] + [str(tmp_path / n) for n in UNITS],
                       cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout
