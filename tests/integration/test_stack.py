"""The stack lifecycle against a real engine: up -> health -> break a dependency ->
scale with traffic -> refusals -> graceful stop -> down."""

from __future__ import annotations

import json
import os
import shlex
import socket
import ssl
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.support import loadgen

from .conftest import ROOT, inv, job_done

pytestmark = pytest.mark.integration


def gateway(env) -> str:
    return f"https://127.0.0.1:{env['GATEWAY_PORT']}"


def containers(engine, env, service):
    return engine.containers.list(all=True, filters={"label": [
        f"com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}",
        f"com.docker.compose.service={service}"]})


def instances_seen(env, n_requests: int) -> Counter:
    seen = Counter()
    with requests.Session() as http:
        for _ in range(n_requests):
            r = http.get(gateway(env) + "/", timeout=5)
            assert r.status_code == 200, r.text
            seen[r.headers["X-Instance"]] += 1
    return seen


@pytest.fixture(scope="module")
def up(stack_env):
    result = inv("up", env=stack_env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_up_ends_healthy_and_prints_urls(up, stack_env):
    assert "healthy in" in up.stdout
    assert gateway(stack_env) in up.stdout
    r = requests.get(gateway(stack_env) + "/health", timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "up"
    assert set(body["checks"]) == {"postgres:app", "postgres:auth", "redis", "broker"}
    # Gateway hardening is real, not configured-and-hoped.
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "X-Request-ID" in r.headers and r.headers["X-App-Version"]
    assert r.headers["Server"] == "nginx"  # server_tokens off: no version


def test_up_migrated_the_schema_before_the_app_started_and_migrate_finds_nothing_more(up, stack_env):
    """The jobs table is a migration's (the worker no longer creates it): `inv up` ran it
    in the api's image before the api and worker started; `inv migrate` then has nothing
    to do; a first start makes no restore point (no stanza yet) and says so."""
    assert "app: applied 0001.jobs" in up.stderr, up.stderr[-2000:]
    assert up.stderr.index("app: applied 0001.jobs") < up.stderr.index("Container", up.stderr.index(
        "app: applied 0001.jobs"))  # then the rest of the stack started
    assert "no restore point (the databases are not archived yet)" in up.stderr
    again = inv("migrate", "--json", env=stack_env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout) == {"pending": [], "applied": [], "restore_point": None}
    assert "migrations: none pending" in again.stderr


def _handshake(port: int, ctx: ssl.SSLContext, name: str = "127.0.0.1"):
    with socket.create_connection(("127.0.0.1", port), 5) as raw, \
            ctx.wrap_socket(raw, server_hostname=name) as conn:
        return conn.version()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_the_gateway_speaks_modern_tls_only_and_redirects_plain_http(up, stack_env):
    port = int(stack_env["GATEWAY_PORT"])
    trusted = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    assert _handshake(port, trusted) in ("TLSv1.2", "TLSv1.3")
    assert _handshake(port, trusted, name="localhost") in ("TLSv1.2", "TLSv1.3")
    # A client that does not trust the project's CA is refused, as a browser would be.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(port, ssl.create_default_context(cafile=certifi_or_none()))
    # ... and a name the certificate does not carry.
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        _handshake(port, trusted, name="elsewhere.example")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        _handshake(port, old)
    # Plain HTTP on the same port: a permanent redirect to the same URL over HTTPS.
    r = requests.post(f"http://127.0.0.1:{port}/jobs?x=1", json={}, timeout=5, allow_redirects=False)
    assert r.status_code == 308 and r.headers["Location"] == f"https://127.0.0.1:{port}/jobs?x=1"
    # HSTS, except for `localhost` (a browser would force every local port onto HTTPS).
    secure = requests.get(gateway(stack_env) + "/health/live", timeout=5)
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    local = requests.get(f"https://localhost:{port}/health/live", timeout=5)
    assert local.status_code == 200 and "Strict-Transport-Security" not in local.headers


def certifi_or_none():
    """The public roots requests ships (never the project's CA)."""
    import certifi

    return certifi.where()


def test_health_json_all_healthy(up, stack_env):
    result = inv("health", "--json", env=stack_env)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["healthy"] is True
    checks = {(c["service"], c["check"]): c for c in data["checks"]}
    for key in [("app-db", "SELECT 1"), ("auth-db", "SELECT 1"), ("redis", "PING"),
                ("rabbitmq", "ping"), ("worker", "container"), ("api", "live+ready direct"),
                ("gateway", "api /health/live via gateway"),
                ("gateway", "api /health/ready via gateway"), ("gateway", "container"),
                ("gateway", "TLS certificate")]:
        assert checks[key]["ok"], checks[key]
        assert checks[key]["latency_ms"] >= 0
    assert "days left" in checks[("gateway", "TLS certificate")]["detail"]


def test_stopped_dependency_is_reported_then_recovers(up, stack_env, engine):
    (redis,) = containers(engine, stack_env, "redis")
    redis.stop(timeout=10)
    try:
        result = inv("health", "--json", env=stack_env)
        assert result.returncode == 1
        data = json.loads(result.stdout)
        failing = {(c["service"], c["check"]) for c in data["checks"] if not c["ok"]}
        assert ("redis", "container") in failing
        assert ("redis", "PING") in failing
        assert ("api", "live+ready direct") in failing  # ready depends on redis
        assert ("gateway", "api /health/ready via gateway") in failing
        assert ("gateway", "api /health/live via gateway") not in failing  # still live
        table = inv("health", env=stack_env)
        assert table.returncode == 1 and "FAIL" in table.stdout and "failing" in table.stdout
    finally:
        redis.start()
    recovered = inv("health", "--wait", "90", env=stack_env, timeout=200)
    assert recovered.returncode == 0, recovered.stdout


def test_a_hung_database_is_reported_in_seconds_not_waited_for(up, stack_env, engine):
    """The postmaster stopped (SIGSTOP from the host, as a hung server): it still accepts
    connections and never answers, so psql would wait forever. Health kills it in the
    container after the probe's timeout and names the database; nothing is left behind."""
    import signal

    (db,) = containers(engine, stack_env, "app-db")
    init = db.attrs["State"]["Pid"]  # the container's init (init: true); its child is postgres
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    pid = next(int(c) for c in children if Path(f"/proc/{c}/comm").read_text().strip() == "postgres")
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = inv("health", "--json", env=stack_env, timeout=120)
        took = time.monotonic() - started
        assert result.returncode == 1
        failing = {(c["service"], c["check"]): c["detail"]
                   for c in json.loads(result.stdout)["checks"] if not c["ok"]}
        assert failing.get(("app-db", "SELECT 1"), "").startswith("no answer in 5 s"), failing
        assert took < 60, took  # bounded: before, it never returned
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "psql" not in " ".join(" ".join(p) for p in db.top()["Processes"])
    recovered = inv("health", "--wait", "60", env=stack_env, timeout=120)
    assert recovered.returncode == 0, recovered.stdout


def test_scale_api_to_three_and_back(up, stack_env, engine):
    result = inv("scale", "api=3", env=stack_env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "api: 3 replica(s) healthy, 3 answering through the gateway" in result.stdout
    replicas = containers(engine, stack_env, "api")
    assert len(replicas) == 3
    # Independent proof: traffic through the gateway reaches all three replicas.
    seen = instances_seen(stack_env, 60)
    assert set(seen) == {c.id[:12] for c in replicas}

    result = inv("scale", "api=1", env=stack_env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (only,) = containers(engine, stack_env, "api")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # nginx re-resolves every 5 s
        seen = instances_seen(stack_env, 20)
        if set(seen) == {only.id[:12]}:
            break
        time.sleep(1)
    assert set(seen) == {only.id[:12]}


def _consumers(stack_env) -> str:
    return requests.get(gateway(stack_env) + "/health", timeout=5).json()["checks"]["broker"]["detail"]


def test_a_job_goes_through_the_broker_to_the_worker_and_into_postgres(up, stack_env, engine):
    """POST /jobs through the gateway -> RabbitMQ -> a worker -> a row in app-db, with the
    request's ID carried in the message; three workers share the queue after a scale."""
    rid = f"test-{time.time_ns()}"
    r = requests.post(gateway(stack_env) + "/jobs", json={"n": 1}, timeout=5,
                      headers={"X-Request-ID": rid})
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    done = job_done(gateway(stack_env), job)
    assert done.status_code == 200 and done.json()["payload"] == {"n": 1}
    (worker,) = containers(engine, stack_env, "worker")
    assert done.json()["processed_by"] == worker.id[:12]
    assert r.json()["request_id"] == r.headers["X-Request-ID"] == rid  # the caller's, kept
    assert done.json()["request_id"] == rid  # carried in the message's headers
    logs = worker.logs().decode()
    assert job in logs and rid in logs

    # Followed by its ID through gateway, api and worker, in time order.
    traced = inv("logs", "--request", rid, env=stack_env)
    assert traced.returncode == 0, traced.stderr
    lines = traced.stdout.splitlines()
    assert {line.split(" ", 2)[1] for line in lines} >= {"gateway-1", "api-1", "worker-1"}, lines
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert stamps == sorted(stamps) and all(rid in line for line in lines)
    by_source = {line.split(" ", 2)[1]: line for line in lines}
    assert '"job enqueued"' in traced.stdout and '"job processed"' in by_source["worker-1"]
    # A made-up ID (or one that could forge a log line) is replaced by the gateway's own.
    forged = requests.post(gateway(stack_env) + "/jobs", json={}, timeout=5,
                           headers={"X-Request-ID": 'x"}, {"level": "error'})
    assert forged.status_code == 202
    assert forged.json()["request_id"] == forged.headers["X-Request-ID"]
    assert len(forged.headers["X-Request-ID"]) == 32 and forged.headers["X-Request-ID"].isalnum()
    missing = inv("logs", "--request", "no-such-request-id", env=stack_env)
    assert missing.returncode == 1 and "no log line mentions 'no-such-request-id'" in missing.stderr
    assert requests.get(gateway(stack_env) + "/jobs/00000000-0000-4000-8000-000000000000",
                        timeout=5).status_code == 404
    assert requests.post(gateway(stack_env) + "/jobs", data=b"{not json", timeout=5).status_code == 400

    result = inv("scale", "worker=3", env=stack_env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "worker: 3 replica(s) healthy" in result.stdout
    assert len(containers(engine, stack_env, "worker")) == 3
    assert _consumers(stack_env).endswith("3 consumer(s)")
    ids = [requests.post(gateway(stack_env) + "/jobs", json={"i": i}, timeout=5).json()["id"]
           for i in range(30)]
    answers = [job_done(gateway(stack_env), job_id) for job_id in ids]
    assert all(a.status_code == 200 for a in answers)
    by = {a.json()["processed_by"] for a in answers}
    assert len(by) >= 2  # prefetch spreads 30 jobs over more than one worker
    assert inv("scale", "worker=1", env=stack_env, timeout=300).returncode == 0
    assert _consumers(stack_env).endswith("1 consumer(s)")


@pytest.mark.parametrize("spec,message,code", [
    ("app-db=2", "stateful", 1),
    ("redis=2", "stateful", 1),
    ("rabbitmq=2", "stateful", 1),
    ("gateway=2", "fixed host port", 1),
    ("nope=2", "unknown service 'nope'", 1),
    # a malformed argument is the command line's fault: exit 2
    ("api=-1", "must be >= 0", 2),
    ("api=lots", "bad replica count", 2),
    ("api=2;touch /tmp/ops-pwned", "bad replica count", 2),
    ("$(touch /tmp/ops-pwned)=2", "bad", 2),
])
def test_scale_refusals_change_nothing(up, stack_env, engine, spec, message, code):
    before = sorted(c.id for c in engine.containers.list(all=True, filters={
        "label": f"com.docker.compose.project={stack_env['COMPOSE_PROJECT_NAME']}"}))
    result = inv("scale", spec, env=stack_env)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stderr
    after = sorted(c.id for c in engine.containers.list(all=True, filters={
        "label": f"com.docker.compose.project={stack_env['COMPOSE_PROJECT_NAME']}"}))
    assert before == after
    assert not __import__("os").path.exists("/tmp/ops-pwned")


# Two clients that reset their connection (SO_LINGER 0): one before sending a request,
# one while its slow request is in flight. Neither may put a plain traceback in the logs.
RESETTING_CLIENTS = (
    "import socket,struct,time\n"
    "def rst(s): s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); s.close()\n"
    "rst(socket.create_connection(('127.0.0.1', 8000)))\n"
    "s = socket.create_connection(('127.0.0.1', 8000))\n"
    "s.sendall(b'GET /work?ms=300 HTTP/1.0\\r\\n\\r\\n'); rst(s); time.sleep(0.6)\n"
)


def test_logs_exec_ps(up, stack_env):
    reset = inv("exec", "api", f"python3 -c {shlex.quote(RESETTING_CLIENTS)}", env=stack_env)
    assert reset.returncode == 0, reset.stderr
    logs = inv("logs", "--service", "api", "--tail", "50", env=stack_env)
    assert logs.returncode == 0
    entries = [json.loads(ln.split("|", 1)[1]) for ln in logs.stdout.splitlines() if "|" in ln]
    assert entries and all({"ts", "level", "msg"} <= set(e) for e in entries)  # JSON logs
    assert any(e.get("path") == "/work" and e.get("status") == 499 for e in entries)
    assert any(e["msg"] == "client disconnected" for e in entries)
    bad = inv("logs", "--service", "nope", env=stack_env)
    assert bad.returncode == 1 and "unknown service 'nope'" in bad.stderr
    out = inv("exec", "api", "python3 -c 'print(6*7)'", env=stack_env)
    assert out.returncode == 0 and out.stdout.strip() == "42"
    whoami = inv("exec", "api", "id -u", env=stack_env)
    assert whoami.stdout.strip() == "10001"  # the api runs as non-root
    ps = inv("ps", "--json", env=stack_env)
    assert {c["service"] for c in json.loads(ps.stdout)} == {"api", "app-db", "auth-db", "redis",
                                                            "rabbitmq", "worker", "gateway", "pgbackrest"}


def test_config_masks_secrets(up, stack_env):
    result = inv("config", env=stack_env)
    assert result.returncode == 0
    for key in ("APP_DB_PASSWORD", "AUTH_DB_PASSWORD", "REDIS_PASSWORD"):
        assert stack_env[key] not in result.stdout
    assert "APP_DB_PASSWORD" in result.stdout and "********" in result.stdout
    data = json.loads(inv("config", "--json", env=stack_env).stdout)
    assert data["project"] == stack_env["COMPOSE_PROJECT_NAME"]
    assert data["variables"]["GATEWAY_PORT"] == {"value": stack_env["GATEWAY_PORT"],
                                                 "source": "environment"}


def test_rate_limit_answers_429_not_errors(up, stack_env):
    # Bounded burst on loopback: 1200 requests from 8 threads, well above 100 r/s + 200 burst.
    statuses = Counter()

    def burst():
        with requests.Session() as http:
            for _ in range(150):
                statuses[http.get(gateway(stack_env) + "/", timeout=5).status_code] += 1

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 429}
    assert statuses[429] > 0 and statuses[200] >= 200
    time.sleep(3)  # let the bucket refill before the next test


def test_graceful_sigterm_finishes_in_flight_request(up, stack_env, engine):
    (api,) = containers(engine, stack_env, "api")
    result = {}

    def slow_request():
        r = requests.get(gateway(stack_env) + "/work?ms=3000", timeout=20)
        result["status"], result["instance"] = r.status_code, r.json().get("instance")

    t = threading.Thread(target=slow_request)
    t.start()
    time.sleep(1.0)  # the request is now in flight inside the api
    api.stop(timeout=20)  # SIGTERM; SIGKILL only after 20 s
    t.join(timeout=30)
    assert result == {"status": 200, "instance": api.id[:12]}
    api.reload()
    assert api.attrs["State"]["ExitCode"] == 0  # clean exit, not killed
    api.start()
    assert inv("health", "--wait", "90", env=stack_env, timeout=200).returncode == 0


def test_down_volumes_needs_confirmation(up, stack_env, engine):
    result = inv("down", "--volumes", env=stack_env, input="")
    assert result.returncode == 1 and "refusing without --yes" in result.stderr
    assert containers(engine, stack_env, "app-db")  # nothing was removed


def test_build_tags_the_api_with_the_git_commit(stack_env, engine):
    import subprocess

    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    before = {t for i in engine.images.list("ops-example/api") for t in i.tags}
    result = inv("build", "--service", "api", env=stack_env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    tagged = [ln.split()[1] for ln in result.stdout.splitlines() if ln.startswith("tagged ")]
    try:
        assert tagged and tagged[0].split(":")[1].startswith(sha)
        env = engine.images.get(tagged[0]).attrs["Config"]["Env"]
        assert f"APP_VERSION={tagged[0].split(':')[1]}" in env  # the version header says so
    finally:
        for ref in set(tagged) - before:
            engine.images.remove(ref)


def test_maintenance_mode_on_and_off_under_load_loses_no_request_in_flight(up, stack_env):
    """Under 50 req/s: `maintenance.on` (a reload) turns every answer on / into the page
    (503, Retry-After, the message escaped) while /health* still answers 200 and `inv
    health` warns; a slow request already in flight finishes with 200; `off` brings the
    app back; no request ever fails otherwise (no reset, no other status)."""
    url = gateway(stack_env)
    slow: list = []
    with loadgen.Load(url + "/", rate=50) as load:
        time.sleep(1.5)
        held = threading.Thread(target=lambda: slow.append(requests.get(url + "/work?ms=2500", timeout=10)))
        held.start()
        time.sleep(0.5)
        on = inv("maintenance.on", "--message", "Back soon <b>& \"$host\"</b>", "--retry-after", "60",
                 env=stack_env, timeout=120)
        assert on.returncode == 0, on.stderr
        on_at = time.monotonic() - load._t0
        held.join()
        page = requests.get(url + "/anything", timeout=5)
        assert page.status_code == 503 and page.headers["Retry-After"] == "60"
        assert page.headers["X-Maintenance"].startswith("on since ")
        assert "Back soon &lt;b&gt;&amp; &quot;&#36;host&quot;&lt;/b&gt;" in page.text
        assert requests.get(url + "/health/ready", timeout=5).status_code == 200
        health = inv("health", "--json", env=stack_env, timeout=120)
        assert health.returncode == 0, health.stdout
        warned = [c for c in json.loads(health.stdout)["checks"] if "MAINTENANCE MODE" in c["detail"]]
        assert warned and all(c["status"] == "warn" for c in warned)
        assert "on since" in inv("maintenance.status", env=stack_env).stdout
        time.sleep(1)
        off_began = time.monotonic() - load._t0
        off = inv("maintenance.off", env=stack_env, timeout=120)
        assert off.returncode == 0, off.stderr
        off_at = time.monotonic() - load._t0
        time.sleep(1.5)
    assert [r.status_code for r in slow] == [200]  # in flight across the reload
    samples = load.samples
    assert len(samples) >= 150 and not [s for s in samples if s.status not in (200, 503)], \
        loadgen.summary(samples)
    assert {s.status for s in samples if s.t < 1.5} == {200}
    assert {s.status for s in samples if on_at <= s.t <= off_began} == {503}
    assert {s.status for s in samples if s.t > off_at} == {200}
    assert "maintenance mode (local): off" in inv("maintenance.status", env=stack_env).stdout
