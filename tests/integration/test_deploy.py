"""Blue-green deploys on the sandbox Swarm over real SSH, under steady load through the
gateway: v1 -> v2 -> rollback -> v3 with zero failed requests; a v2 failing its health
check aborts with v1 serving; the lock refuses a second deploy and frees on Ctrl-C;
names with shell metacharacters are refused before anything runs."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest

from ops.config import read_env_file
from tests.support import loadgen

from .conftest import (
    ROOT,
    SANDBOX,
    SANDBOX_PROJECT,
    base_images,
    fresh_passwords,
    job_done,
    sandbox_inv,
    sigint_default,
)

pytestmark = pytest.mark.integration

REPO = f"ops-test-{secrets.token_hex(3)}/api"
TAGS = ("v1", "v2", "v3")
BAD = "v2-bad"


def _env() -> dict:
    return {**base_images(), "API_IMAGE": REPO}


# In the sandbox project's .env.sandbox, where `inv secrets.rotate` keeps a new value
# (one in the process environment could not be rotated).
PASSWORDS = fresh_passwords()


@pytest.fixture(scope="module", autouse=True)
def passwords_file(sandbox_project):
    path = sandbox_project / ".env.sandbox"
    path.write_text("".join(f"{k}={v}\n" for k, v in PASSWORDS.items()))
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)


def inv(*args, **kw):
    return sandbox_inv(*args, extra_env=_env(), **kw)


@pytest.fixture(scope="module")
def images(engine):
    """v1..v3 of the real api (only APP_VERSION differs), and a v2 whose readiness fails
    (it looks for redis on a port where nothing listens), so its health check fails."""
    from ops.wheelhouse import ensure

    ensure(ROOT)
    python = read_env_file(ROOT / ".env").get("PYTHON_IMAGE") or "python:3.11-slim-bookworm"
    for tag in TAGS:
        engine.images.build(path=str(ROOT / "compose" / "api"), tag=f"{REPO}:{tag}", rm=True, forcerm=True,
                            buildargs={"PYTHON_IMAGE": python, "APP_VERSION": tag})
    engine.images.build(fileobj=__import__("io").BytesIO(
        f"FROM {REPO}:v1\nENV REDIS_PORT=6390 APP_VERSION={BAD}\n".encode()), tag=f"{REPO}:{BAD}",
        rm=True, forcerm=True)
    yield
    for tag in (*TAGS, BAD):
        engine.images.remove(f"{REPO}:{tag}", force=True)


@pytest.fixture(scope="module")
def deployed(sandbox, images):
    """v1 live (the first deploy also creates the database, redis and the gateway)."""
    first = inv("deploy", "--env", "sandbox", "--tag", "v1", timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "blue/v1 is live" in first.stdout
    return _url()


def _url() -> str:
    return json.loads((SANDBOX_PROJECT[0] / ".sandbox" / "hosts.json").read_text())["url"]


def _status() -> dict:
    r = inv("deploy.status", "--env", "sandbox", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _served_between(samples, start, end) -> set[str]:
    return {f"{s.color}/{s.version}" for s in samples if start <= s.t <= end}


def test_deploy_rollback_deploy_under_load_fails_no_request(deployed):
    steps = [(("deploy", "--tag", "v2"), "green/v2"), (("rollback",), "blue/v1"),
             (("deploy", "--tag", "v3"), "green/v3")]
    windows = []
    with loadgen.Load(deployed + "/", rate=100) as load:
        time.sleep(2)
        for args, expected in steps:
            began = time.monotonic() - load._t0
            r = inv(*args, "--env", "sandbox", timeout=900)
            assert r.returncode == 0, f"{args}: {r.stderr[-3000:]}"
            windows.append((began, time.monotonic() - load._t0, expected))
            if args == ("rollback",):  # the switch is verified; the worker follows on its own
                assert "followers rolling back in the background" in r.stdout, r.stdout
            time.sleep(2.5)  # a steady window on the new version before the next step
    result = loadgen.summary(load.samples)
    # The load really ran: 100 req/s offered, at least 70 achieved (the generator shares this
    # machine's two CPUs with the other test worker and the deploys: 71-88 measured in CI
    # runs, with 0 failed each time).
    assert result["requests"] >= 1500 and result["rate"] >= 70, result
    assert result["failed"] == 0, result
    # Each step really changed what is served: before the first, v1 only; from one
    # second after a step returned until the next began, that step's version only.
    assert _served_between(load.samples, 0, windows[0][0]) == {"blue/v1"}
    for (_, ended, expected), nxt in zip(windows, [*windows[1:], None], strict=True):
        until = nxt[0] if nxt else load.samples[-1].t
        assert _served_between(load.samples, ended + 1.0, until) == {expected}, (expected, result)
    status = _status()
    assert status["live"] == "green" and status["live_tag"] == "v3" and status["lock"] is None
    assert status["colors"]["green"]["tag"] == "v3" and status["colors"]["green"]["running"] == 2
    assert status["colors"]["blue"]["tag"] == "v1"  # kept for an instant rollback
    worker = status["followers"]["worker"]
    assert (worker["tag"], worker["running"]) == ("v3", worker["replicas"]), worker
    assert status["url"] == deployed
    history = inv("deploy.history", "--env", "sandbox", "--json")
    records = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(r["action"], r["to_tag"], r["outcome"]) for r in records[-3:]] == [
        ("deploy", "v2", "ok"), ("rollback", "v1", "ok"), ("deploy", "v3", "ok")]
    assert all(r["user"] and r["from_host"] and r["ts"] for r in records)


def test_failing_health_check_aborts_and_the_live_color_keeps_serving(deployed):
    before = _status()
    with loadgen.Load(deployed + "/", rate=100) as load:
        r = inv("deploy", "--env", "sandbox", "--tag", BAD, timeout=900)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: deploy ") and f":{BAD})" in last, r.stderr[-2000:]
    assert "not running" in r.stderr and "Traceback" not in last
    result = loadgen.summary(load.samples)
    assert result["failed"] == 0 and result["requests"] > 500, result
    live = f"{before['live']}/{before['live_tag']}"
    assert set(result["sequence"]) == {live}
    after = _status()
    assert (after["live"], after["live_tag"], after["lock"]) == (before["live"], before["live_tag"], None)
    idle = after["colors"][[c for c in after["colors"] if c != after["live"]][0]]
    assert idle["tag"] == BAD and idle["replicas"] == 0  # stopped, not restarting forever
    assert after["last"]["outcome"] == "failed" and after["last"]["step"].startswith("deploy ")
    # The worker rolled out with the idle color (gated with it): it goes back with the live one.
    assert after["followers"]["worker"]["tag"] == before["live_tag"], after["followers"]
    assert "rolling back to" in r.stderr


def _start_deploy(tag: str) -> subprocess.Popen:
    env = {**os.environ, "OPS_SANDBOX": SANDBOX, "OPS_ROOT": str(SANDBOX_PROJECT[0]), **_env()}
    return subprocess.Popen([sys.executable, "-m", "invoke", "deploy", "--env", "sandbox", "--tag", tag],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)


def _wait_for_stage(proc: subprocess.Popen, stage: str, timeout: float = 300):
    """Follow the deploy's stderr until it announces `==> <stage>`. Returns the lines
    (the list keeps filling) and the reader thread, which ends at EOF."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not any(ln.startswith(f"==> {stage}") for ln in list(lines)):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    return lines, reader


def _wait_locked(proc, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status()
        if status["lock"]:
            return status
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.3)
    raise AssertionError("the deploy never took the lock")


def test_second_deploy_is_refused_while_one_runs(deployed):
    first = _start_deploy("v2")
    try:
        held = _wait_locked(first)
        assert held["lock"]["pid"] == first.pid and held["lock"]["tag"] == "v2"
        second = inv("deploy", "--env", "sandbox", "--tag", "v1")
        assert second.returncode == 75, second.stderr
        assert f"pid {first.pid}" in second.stderr and "locked by" in second.stderr
        out, err = first.communicate(timeout=900)
        assert first.returncode == 0, err[-2000:]
    finally:
        first.kill()
    assert _status()["lock"] is None


def test_ctrl_c_mid_deploy_releases_the_lock_and_keeps_serving(deployed):
    before = _status()
    # The bad version's rollout never converges (about 25 s before it is declared failed):
    # Ctrl-C surely lands mid-deploy, before any switch.
    proc = _start_deploy(BAD)
    try:
        seen, reader = _wait_for_stage(proc, "deploy ")
        time.sleep(1.0)  # inside the rollout wait
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        proc.kill()
    err = "".join(seen)
    assert proc.returncode == 130 and err.strip().endswith("interrupted"), err[-2000:]
    after = _status()
    assert after["lock"] is None
    assert (after["live"], after["live_tag"]) == (before["live"], before["live_tag"])
    assert after["last"]["outcome"] == "interrupted"
    idle = after["colors"][[c for c in after["colors"] if c != after["live"]][0]]
    assert idle["replicas"] == 0  # the half-rolled-out color does not restart forever
    identity = loadgen.summary(_sample(deployed, 20))
    assert identity["failed"] == 0 and identity["sequence"] == [f"{before['live']}/{before['live_tag']}"]


def _sample(url, count):
    with loadgen.Load(url + "/", rate=50, threads=2) as load:
        while len(load.samples) < count:
            time.sleep(0.1)
    return load.samples


@pytest.mark.parametrize("args, message", [
    (("--tag", "v1;touch /tmp/ops-pwned"), "invalid image tag"),
    (("--tag", "$(touch /tmp/ops-pwned)"), "invalid image tag"),
    (("--tag", "../v1"), "invalid image tag"),
])
def test_names_with_shell_metacharacters_are_refused(sandbox, args, message):
    r = inv("deploy", "--env", "sandbox", *args)
    # the command line's fault, said before anything connects: exit 2
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists("/tmp/ops-pwned")


def test_bad_app_name_is_refused(sandbox):
    r = sandbox_inv("deploy.status", "--env", "sandbox", extra_env={"INVOKE_DEPLOY_APP": "x;reboot"})
    assert r.returncode == 1 and "invalid app name" in r.stderr


def test_deploy_to_a_host_with_an_unknown_key_is_refused(deployed):
    known = SANDBOX_PROJECT[0] / ".sandbox" / "known_hosts"
    saved = known.read_text()
    known.write_text("")
    try:
        r = inv("deploy", "--env", "sandbox", "--tag", "v1")
    finally:
        known.write_text(saved)
    assert r.returncode == 1 and "unknown host key" in r.stderr


# -- ps / health / logs / exec on the deployed environment (run last: they stop things) --

def _sandbox_hosts(engine) -> dict[str, object]:
    """Node hostname -> the sandbox container that is that machine."""
    return {c.attrs["Config"]["Hostname"]: c
            for c in engine.containers.list(filters={"label": f"ops.sandbox={SANDBOX}"})
            if "registry" not in c.name}


def _health() -> tuple[int, dict]:
    r = inv("health", "--env", "sandbox", "--json", timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def _failing(report) -> list[tuple[str, str]]:
    return [(c["service"], c["check"]) for c in report["checks"] if not c["ok"]]


def test_ps_health_logs_exec_act_on_the_cluster(deployed, engine):
    status = _status()
    if None in status["colors"].values():  # run alone: the deploy tests made the other color
        r = inv("deploy", "--env", "sandbox", "--tag", "v2", timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        status = _status()
    live, tag = status["live"], status["live_tag"]
    r = inv("ps", "--env", "sandbox", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["service"]: row for row in json.loads(r.stdout)}
    assert {"blue", "green", "app-db", "auth-db", "redis", "rabbitmq", "worker", "gateway"} <= set(rows)
    assert rows[live]["live"] and rows[live]["tag"] == tag and rows[live]["running"] == 2
    nodes = set(_sandbox_hosts(engine))
    assert {t["node"] for row in rows.values() for t in row["tasks"]} == nodes  # both machines
    table = inv("ps", "--env", "sandbox").stdout
    assert f"{live} (live)" in table and "2/2" in table

    code, report = _health()
    assert code == 0 and not _failing(report), _failing(report) or report
    checks = {(c["service"], c["check"].split(" on ")[0]) for c in report["checks"]}
    assert {("app-db", "SELECT 1"), ("auth-db", "SELECT 1"), ("redis", "PING"),
            ("rabbitmq", "ping"), ("deploy lock", "state")} <= checks
    assert {f"node {n}" for n in nodes} <= {c["service"] for c in report["checks"]}
    assert any(c["check"].startswith("/health/ready via") and f"v {tag}" in c["detail"]
               for c in report["checks"])
    tls = next(c for c in report["checks"] if c["check"].startswith("TLS certificate of https://"))
    assert tls["ok"] and "days left" in tls["detail"], tls
    # On Swarm the key is mounted for nginx's uid alone, on a read-only root filesystem.
    r = inv("exec", "--env", "sandbox", "gateway", "sh -c " + shlex.quote(
        "stat -c '%a %u' /run/secrets/gateway_tls_key; touch /probe 2>&1 || true"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "400 101" and "Read-only file system" in r.stdout, r.stdout

    logs = inv("logs", "--env", "sandbox", "-s", "api", "--tail", "3")
    assert logs.returncode == 0, logs.stderr
    assert {line.split("|")[0].strip().rsplit("@", 1)[-1] for line in logs.stdout.splitlines()
            if "|" in line} == {t["node"] for t in rows[live]["tasks"]}

    # exec lands in the task's own container, on the node that runs it (the worker's too).
    for index, t in enumerate(rows[live]["tasks"], start=1):
        r = inv("exec", "--env", "sandbox", "api", "cat /etc/hostname", "--index", str(index))
        assert r.returncode == 0 and r.stdout.strip() == t["container"], (t, r.stderr)
    missing = inv("exec", "--env", "sandbox", "nope", "true")
    assert missing.returncode == 1 and "unknown service 'nope'" in missing.stderr


def test_health_starts_the_brokers_ping_where_it_last_ran_and_a_wrong_guess_changes_nothing(deployed):
    """The place file is a hint: a container that is gone, another service's container
    or a file that is not ours each leave health green and are replaced by the truth."""
    places = SANDBOX_PROJECT[0] / ".cache" / "health-places-sandbox.json"
    code, report = _health()
    assert code == 0 and not _failing(report), _failing(report) or report
    rows = {row["service"]: row for row in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    (broker,) = rows["rabbitmq"]["tasks"]
    saved = json.loads(places.read_text())
    assert [p["role"] for p in saved] == ["broker"]
    assert saved[0]["container"].startswith(broker["container"])  # ps shows 12 digits
    assert saved[0]["host"] in {"manager", "worker"}
    for wrong in ("0" * 64, rows["redis"]["tasks"][0]["container"]):
        places.write_text(json.dumps([{**saved[0], "container": wrong}]))
        code, report = _health()
        assert code == 0 and not _failing(report), (wrong, report)
        assert json.loads(places.read_text()) == saved
    places.write_text("{not json")
    code, report = _health()
    assert code == 0 and json.loads(places.read_text()) == saved


def test_health_names_a_stopped_database_container_then_recovers(deployed, engine):
    manager = next(c for name, c in _sandbox_hosts(engine).items() if name.endswith("manager"))
    cid = manager.exec_run(["sh", "-c", "docker ps -q --filter label=com.docker.swarm.service.name="
                            f"{_app()}_app-db"]).output.decode().strip()
    assert cid
    manager.exec_run(["docker", "stop", cid])
    code, report = _health()
    assert code == 1 and ("app-db", "tasks") in _failing(report), report
    _wait_until_ok("app-db")  # Swarm restarts it


def test_health_names_a_node_that_went_down(deployed, engine):
    name, worker = next((n, c) for n, c in _sandbox_hosts(engine).items() if n.endswith("worker"))
    worker.pause()  # its dockerd stops answering the manager's heartbeats
    try:
        deadline = time.monotonic() + 90
        while True:
            code, report = _health()
            if (f"node {name}", "ready") in _failing(report) or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert code == 1 and (f"node {name}", "ready") in _failing(report), report
        # A log search does not wait for it: the other node's lines, then what was not read.
        searched = inv("logs", "--env", "sandbox", "--grep", "/health", timeout=120)
        assert searched.returncode == 1 and "Traceback" not in searched.stderr, searched.stderr
        assert re.search(rf"not searched: node {re.escape(name)}'s logs \(the node is \w+\)",
                         searched.stderr.strip().splitlines()[-1]), searched.stderr
        # A deploy needs every node: it names the one that does not answer, and what to do.
        before = _status()
        r = inv("deploy", "--env", "sandbox", "--tag", before["live_tag"], timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "worker (root@" in lines[-1] and "is unreachable over SSH" in lines[-1], lines[-1]
        assert "drain" in lines[-1] and "sandbox inventory" in lines[-1]
        after = _status()
        assert (after["live"], after["live_tag"], after["lock"]) == (before["live"], before["live_tag"], None)
    finally:
        worker.unpause()
    _wait_until_ok(f"node {name}")
    _wait_until_only_swarm_tasks_run(worker)


def _wait_until_only_swarm_tasks_run(host, timeout: float = 120) -> None:
    """A node back from a pause still runs the tasks the Swarm moved away, until its
    agent hears they are to stop: a worker there would take the next test's jobs."""
    deadline = time.monotonic() + timeout
    while True:
        rows = json.loads(inv("ps", "--env", "sandbox", "--json").stdout)
        known = {t["container"][:12] for row in rows for t in row["tasks"]}
        out = host.exec_run(["docker", "ps", "-q", "--filter",
                             f"label=com.docker.stack.namespace={_app()}"]).output.decode()
        stale = set(out.split()) - known
        if not stale:
            return
        assert time.monotonic() < deadline, f"still running on {host.name}: {stale}"
        time.sleep(2)


def _wait_until_ok(service: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code, report = _health()
        if not [f for f in _failing(report) if f[0] == service]:
            return
        assert time.monotonic() < deadline, report
        time.sleep(3)


def _app() -> str:
    return _status()["app"]


def test_a_job_goes_through_the_deployed_worker_and_scale_acts_on_the_cluster(deployed, engine):
    """On the sandbox: a job enqueued through the public URL is recorded by the deployed
    worker; `scale api=3` gives 3 distinct instances through the gateway; the worker
    scaled to 0 is a failing health check naming it."""
    import requests

    url = _status()["url"]
    r = requests.post(url + "/jobs", json={"on": "sandbox"}, timeout=5)  # no ID: the gateway's
    assert r.status_code == 202, r.text
    rid = r.headers["X-Request-ID"]
    assert r.json()["request_id"] == rid and len(rid) == 32
    done = job_done(url, r.json()["id"], timeout=60)
    assert done.status_code == 200, done.text
    rows = {row["service"]: row for row in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    assert done.json()["processed_by"] in {t["container"][:12] for t in rows["worker"]["tasks"]}

    # The request followed across gateway, api and worker, on whichever nodes run them.
    traced = inv("logs", "--env", "sandbox", "--request", rid)
    assert traced.returncode == 0, traced.stderr
    lines = traced.stdout.splitlines()
    sources = [line.split(" ", 2)[1] for line in lines]
    assert any("_gateway." in s for s in sources), lines
    assert any(f"_{_status()['live']}." in s for s in sources), lines  # the live color's api
    assert any("_worker." in s and "@" in s for s in sources), lines
    assert [line.split(" ", 1)[0] for line in lines] == sorted(line.split(" ", 1)[0] for line in lines)
    assert all(rid in line for line in lines)
    assert any('"job processed"' in line for line in lines)

    scaled = inv("scale", "api=3", "--env", "sandbox", timeout=600)
    assert scaled.returncode == 0, scaled.stderr[-2000:]
    live = _status()["live"]
    assert f"{live}: 3 replica(s) healthy, 3 answering through the gateway" in scaled.stdout
    assert len({requests.get(url + "/", timeout=5).headers["X-Instance"] for _ in range(40)}) == 3
    assert inv("scale", "api=2", "--env", "sandbox", timeout=600).returncode == 0

    assert inv("scale", "worker=0", "--env", "sandbox", timeout=300).returncode == 0
    try:
        code, report = _health()
        assert code == 1 and ("worker", "tasks") in _failing(report), report
    finally:
        assert inv("scale", "worker=1", "--env", "sandbox", timeout=300).returncode == 0
    _wait_until_ok("worker")


def test_monitoring_on_the_cluster_sees_both_colors_and_alerts_reach_a_webhook(deployed, engine):
    """`monitoring.up --env sandbox` deploys the profile into the stack: every target up
    (each task of both colors), nothing firing; a hung database and a worker no node
    can run reach a webhook on this machine; the UIs open through an SSH tunnel only."""
    import requests

    from tests.support.receiver import Receiver

    receiver = Receiver()
    network = engine.networks.get(SANDBOX).attrs["IPAM"]["Config"][0]["Gateway"]
    fast = {**_env(), "ALERT_WEBHOOK_URL": receiver.url_via(network),
            "INVOKE_MONITORING_SCRAPE_INTERVAL": "3s", "INVOKE_MONITORING_EVALUATION_INTERVAL": "2s",
            "INVOKE_MONITORING_ALERT_FOR": "4s", "INVOKE_MONITORING_GROUP_WAIT": "1s",
            "INVOKE_MONITORING_GROUP_INTERVAL": "2s"}

    def minv(*args, **kw):
        return sandbox_inv(*args, "--env", "sandbox", extra_env=fast, **kw)

    app = _app()
    manager = next(c for name, c in _sandbox_hosts(engine).items() if name.endswith("manager"))
    rows = {r["service"]: r for r in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    if not all(rows.get(c, {}).get("running") for c in ("blue", "green")):
        # Run alone, or after the failed deploy left the idle color at 0: a good release
        # onto the idle color gives both colors running tasks.
        live_tag = _status()["live_tag"]
        tag = next(t for t in TAGS if t != live_tag)
        assert inv("deploy", "--env", "sandbox", "--tag", tag, timeout=900).returncode == 0
    try:
        up = minv("monitoring.up", "--timeout", "300", timeout=900)
        assert up.returncode == 0, up.stderr[-3000:]
        assert "monitoring.open --env sandbox" in up.stdout  # no URL: nothing is published
        assert re.search(r"^  targets: (\d+)/\1 up$", up.stdout, re.M), up.stdout  # up waits for them
        rows = {row["service"]: row for row in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
        assert {"prometheus", "alertmanager", "node-exporter", "blackbox"} <= set(rows)
        assert len(rows["node-exporter"]["tasks"]) == 2  # global: one per node
        api_tasks = {t["container"] for c in ("blue", "green") for t in rows[c]["tasks"]}
        assert len(api_tasks) >= 4  # the idle color keeps running for the instant rollback

        deadline = time.monotonic() + 90
        while True:
            status = minv("monitoring.status", "--json")
            targets = json.loads(status.stdout or "[]")
            if status.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert status.returncode == 0, status.stdout
        assert len([t for t in targets if t["job"] == "api"]) == len(api_tasks)
        assert len([t for t in targets if t["job"] == "node-exporter"]) == 2
        assert {t["instance"] for t in targets if t["job"] == "tasks"} >= {"tasks_blue", "tasks_green",
                                                                            "tasks_worker", "tasks_app-db"}
        deadline = time.monotonic() + 120  # what fired while monitoring started resolves
        while (alerts := minv("monitoring.alerts")).returncode != 0 and time.monotonic() < deadline:
            time.sleep(3)
        assert alerts.returncode == 0 and "no alert firing" in alerts.stdout, alerts.stdout
        code, report = _health()  # health's monitoring lines, through the same tunnel
        assert code == 0, [c for c in report["checks"] if not c["ok"]]
        lines = {c["check"]: c for c in report["checks"] if c["service"] == "monitoring"}
        assert lines["prometheus targets"]["ok"] and lines["alerts"]["detail"] == "none firing", lines

        # The UIs, through a tunnel that lives as long as the command.
        opened = subprocess.Popen(
            [sys.executable, "-m", "invoke", "monitoring.open", "--env", "sandbox"], cwd=ROOT,
            env={**os.environ, "OPS_SANDBOX": SANDBOX, "OPS_ROOT": str(SANDBOX_PROJECT[0]), **fast},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
        try:
            urls = {}
            while len(urls) < 2:
                line = opened.stdout.readline()
                assert line, opened.stderr.read()
                name, url = line.split()[:2]
                urls[name] = url
            assert all(u.startswith("http://127.0.0.1:") for u in urls.values()), urls
            q = requests.get(urls["prometheus"] + "api/v1/query", timeout=10, params={
                "query": "ops_deploy_lock_held_since_timestamp_seconds"}).json()["data"]["result"]
            assert [r["value"][1] for r in q] == ["0"]  # written by the real deploys' lock
            q = requests.get(urls["prometheus"] + "api/v1/query", timeout=10, params={
                "query": 'ops_swarm_desired_replicas{service="worker"}'}).json()["data"]["result"]
            assert [r["value"][1] for r in q] == ["1"]
            # The probe went through TLS, verified against the project's CA: the gateway
            # certificate's expiry is measured (what the expiry alerts read).
            q = requests.get(urls["prometheus"] + "api/v1/query", timeout=10, params={
                "query": 'probe_ssl_earliest_cert_expiry{probe="live"} - time()'}).json()["data"]["result"]
            assert q and 80 * 86400 < float(q[0]["value"][1]) <= 90 * 86400, q
            assert requests.get(urls["alertmanager"] + "api/v2/status", timeout=10).status_code == 200
        finally:
            opened.send_signal(signal.SIGINT)
            assert opened.wait(timeout=30) == 0, opened.stderr.read()

        # A hung database (paused: its exporter's scrape waits past the timeout, so there
        # is no pg_up at all) fires, and resolves once it answers again. (Not a stopped
        # one: Swarm restarts it in about as long as the alert takes to fire.)
        started = time.time()
        cid = manager.exec_run(["sh", "-c", "docker ps -q --filter label=com.docker.swarm.service."
                                f"name={app}_app-db"]).output.decode().strip()
        assert cid and manager.exec_run(["docker", "pause", cid]).exit_code == 0
        try:
            _, fired = receiver.wait_for("PostgresDown", "firing", after=started, timeout=120)
        finally:
            manager.exec_run(["docker", "unpause", cid])
        assert fired["labels"]["service"] == "app-db" and fired["labels"]["env"] == "sandbox"
        receiver.wait_for("PostgresDown", "resolved", after=started, timeout=180)

        # A worker no node can run (as when the only node it may run on is lost): fewer
        # tasks serve than the stack asks for. Stop-first for this update: the stack's own
        # start-first would keep the old task serving while the new one waits for a node.
        started = time.time()
        order = manager.exec_run(["docker", "service", "inspect", "--format",
                                  "{{.Spec.UpdateConfig.Order}}", f"{app}_worker"]).output.decode().strip()
        assert order == "start-first", order  # compose/deploy.yaml's
        pin = ("docker", "service", "update", "-d", "--update-order", "stop-first", "--constraint-add",
               "node.labels.ops-test==nowhere", f"{app}_worker")
        assert manager.exec_run(list(pin)).exit_code == 0
        try:
            # (Another service's may fire too, e.g. a color just deployed when run alone.)
            _, fired = receiver.wait_for("ReplicasBelowDesired", "firing", after=started, timeout=120,
                                         service="worker")
            assert fired["labels"]["service"] == "worker"
        finally:
            manager.exec_run(["docker", "service", "update", "-d", "--update-order", order,
                              "--constraint-rm", "node.labels.ops-test==nowhere", f"{app}_worker"])
        receiver.wait_for("ReplicasBelowDesired", "resolved", after=started, timeout=120,
                          service="worker")
    finally:
        receiver.close()
        down = minv("monitoring.down", timeout=300)
        assert down.returncode == 0, down.stderr[-2000:]
    assert "prometheus" in down.stdout
    rows = {row["service"] for row in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    assert not rows & {"prometheus", "alertmanager", "node-exporter", "blackbox"}
    _wait_until_ok("worker")


# -- Backups of the deployed databases (db.* --env sandbox) --------------------------------

def _manager(engine):
    return next(c for name, c in _sandbox_hosts(engine).items() if name.endswith("manager"))


def _db_psql(engine, service: str, sql: str) -> str:
    """SQL in the database task's own container (the databases are pinned to the manager)."""
    user = {"app-db": "app", "auth-db": "auth"}[service]
    manager = _manager(engine)
    cid = manager.exec_run(["sh", "-c", "docker ps -q --filter label=com.docker.swarm.service.name="
                            f"{_app()}_{service}"]).output.decode().strip()
    assert cid, f"no running {service} task on the manager"
    r = manager.exec_run(["docker", "exec", cid, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-U", user, "-d", user, "-c", sql])
    assert r.exit_code == 0, r.output.decode()
    return r.output.decode().strip()


def _backups(service: str, db: str, root=None) -> list:
    from ops.backup import layout

    return layout.backups_in((root or SANDBOX_PROJECT[0]) / "backups" / "sandbox" / service / db)


def test_backups_of_the_deployed_databases_are_proven_and_restored(deployed, engine):
    """db.backup --env sandbox backs up both deployed databases where they run (over SSH,
    onto this machine), proves them here in a container of the environment's image, and
    publishes the metrics to the cluster's textfile directory; db.restore --env sandbox
    puts one back (the name typed ahead), and a task moved since is still found."""
    from ops.backup import manifest

    _db_psql(engine, "app-db", "DROP TABLE IF EXISTS notes; CREATE TABLE notes (id int PRIMARY KEY, "
             "body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 1000) g;")
    _db_psql(engine, "auth-db", "DROP TABLE IF EXISTS users; CREATE TABLE users (id int PRIMARY KEY); "
             "INSERT INTO users SELECT generate_series(1, 42);")
    r = inv("db.backup", "--env", "sandbox", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [ln.split(":")[0] for ln in r.stdout.splitlines()] == ["app-db/app", "auth-db/auth"]
    assert r.stdout.count("(verified: read)") == 2
    app, auth = _backups("app-db", "app")[-1], _backups("auth-db", "auth")[-1]
    data = manifest.read(app.manifest_path)
    assert data["env"] == "sandbox" and data["tables"]["public.notes"] == 1000
    spec = _manager(engine).exec_run(["docker", "service", "inspect", "--format",
                                      "{{.Spec.TaskTemplate.ContainerSpec.Image}}", f"{_app()}_app-db"])
    assert data["image"] == spec.output.decode().strip().split("@")[0]  # the image it runs
    assert manifest.read(auth.manifest_path)["tables"]["public.users"] == 42
    assert not engine.containers.list(all=True, filters={"label": "ops.role=backup-check"})

    drill = inv("db.verify", "--env", "sandbox", "--latest", "--level", "restore", timeout=600)
    assert drill.returncode == 0, drill.stderr[-2000:]
    assert drill.stdout.count("ok  restore") == 2 and "row counts equal" in drill.stdout
    listed = json.loads(inv("db.list", "--env", "sandbox", "--json").stdout)
    assert {(b["service"], b["verified"]) for b in listed} >= {("app-db", "restore"), ("auth-db", "restore")}
    on_manager = inv("db.verify", "--env", "sandbox", "--file", str(auth.path), "--level", "restore",
                     "--on", "manager", timeout=600)
    assert on_manager.returncode == 0, on_manager.stderr
    assert re.search(r"throwaway \S+ on \S+; 1 tables, row counts equal", on_manager.stdout), \
        on_manager.stdout
    bad_on = inv("db.verify", "--env", "sandbox", "--latest", "--on", "worker")
    assert bad_on.returncode == 1 and "--on must be here or manager" in bad_on.stderr
    # An image this machine lacks is fetched from the manager for the drill.
    fetched = f"ops-test-fetch-{secrets.token_hex(3)}:1"
    assert _manager(engine).exec_run(["docker", "tag", data["image"], fetched]).exit_code == 0
    edited = {**manifest.read(auth.manifest_path), "image": fetched}
    manifest.write(auth.manifest_path, edited)
    try:
        far = inv("db.verify", "--env", "sandbox", "--file", str(auth.path), "--level", "restore",
                  timeout=600)
        assert far.returncode == 0 and f"throwaway {fetched};" in far.stdout, far.stderr
        assert engine.images.get(fetched)
    finally:
        _manager(engine).exec_run(["docker", "rmi", fetched])
        subprocess.run(["docker", "rmi", fetched], capture_output=True)
    assert not _manager(engine).exec_run(["docker", "ps", "-aq", "--filter",
                                          "label=ops.role=restore-drill"]).output.strip()

    # The cluster's node-exporter reads the same metrics (its textfile directory on the manager).
    prom = _manager(engine).exec_run(["sh", "-c", "cat /var/lib/ops-toolkit/*/textfile/ops_backup.prom"])
    assert prom.exit_code == 0 and 'ops_backup_last_run_success{database="app",env="sandbox",' \
        'service="app-db"} 1.0' in prom.output.decode()

    _db_psql(engine, "app-db", "DELETE FROM notes WHERE id > 10;")
    refused = inv("db.restore", "--env", "sandbox", "-s", "app-db", "--latest", "--yes", input="")
    assert refused.returncode == 1 and "pass --confirm app" in refused.stderr, refused.stderr
    assert _db_psql(engine, "app-db", "SELECT count(*) FROM notes") == "10"  # untouched
    restored = inv("db.restore", "--env", "sandbox", "-s", "app-db", "--file", str(app.path),
                   "--confirm", "app", timeout=600)
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert next(ln for ln in restored.stdout.splitlines()
                if ln.startswith("public.notes")).split() == ["public.notes", "10", "1000", "1000"]
    assert _db_psql(engine, "app-db", "SELECT count(*) FROM notes") == "1000"
    safety = _backups("app-db", "app")[-1]
    assert manifest.read(safety.manifest_path)["tables"]["public.notes"] == 10

    # The database task restarted (a new container): the next run finds it. Its container
    # is killed, and Swarm replaces the task from the same spec (a `service update` here
    # would leave a spec that the next deploy's base puts back: a restart mid-rotation).
    label = f"label=com.docker.swarm.service.name={_app()}_app-db"
    killed = [h.exec_run(["sh", "-c", f"docker ps -q --filter {label} | xargs -r docker rm -f"])
              for h in _sandbox_hosts(engine).values()]
    assert all(k.exit_code == 0 for k in killed) and any(k.output.strip() for k in killed)
    gone = {line[:12] for k in killed for line in k.output.decode().split()}
    deadline = time.monotonic() + 120
    while True:  # a new container runs it (health alone could still see the old one)
        rows = {r["service"]: r for r in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
        now = {t["container"][:12] for t in rows["app-db"]["tasks"]}
        if now and not now & gone and rows["app-db"]["running"] == 1:
            break
        assert time.monotonic() < deadline, rows["app-db"]
        time.sleep(2)
    _wait_until_ok("app-db")
    again = inv("db.backup", "--env", "sandbox", "-s", "app-db", timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert manifest.read(_backups("app-db", "app")[-1].manifest_path)["tables"]["public.notes"] == 1000


def _second_clone(tmp_path):
    """Another checkout driving the same sandbox (its own backups directory)."""
    import shutil

    root = tmp_path / "clone"
    shutil.copytree(SANDBOX_PROJECT[0], root, ignore=shutil.ignore_patterns("backups", "wheels"))
    return root


def _start_backup(root=None) -> subprocess.Popen:
    env = {**os.environ, "OPS_SANDBOX": SANDBOX, "OPS_ROOT": str(root or SANDBOX_PROJECT[0]),
           **_env(), "INVOKE_BACKUP_ATTEMPTS": "1"}
    return subprocess.Popen([sys.executable, "-m", "invoke", "db.backup", "--env", "sandbox", "-s",
                             "app-db"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)


def _wait_streaming(proc, directory, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while not any(p.name.endswith(".partial") and p.stat().st_size > 0
                  for p in (directory.iterdir() if directory.is_dir() else [])):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def test_a_dropped_connection_or_an_overlapping_clone_leaves_nothing_valid(deployed, engine, tmp_path):
    """The SSH session killed mid-stream (its sshd process on the manager) fails the run
    in one line with nothing that looks like a backup; a second clone starting while a
    backup streams is refused by the manager's lock (75), naming the holder."""
    _db_psql(engine, "app-db", "CREATE TABLE IF NOT EXISTS big (id int, body text); TRUNCATE big;")
    # In three transactions: one 140 MB insert's dirty pages, charged to the database
    # container's 512 MB cgroup with its shared buffers, got it OOM-killed on a slow disk.
    for third in ("generate_series(1, 200000)", "generate_series(200001, 400000)",
                  "generate_series(400001, 600000)"):
        _db_psql(engine, "app-db", "INSERT INTO big SELECT g, md5(g::text) || "  # noqa: S608
                 f"repeat(md5((g*7)::text), 6) FROM {third} g;")
    directory = SANDBOX_PROJECT[0] / "backups" / "sandbox" / "app-db" / "app"
    try:
        before = len(_backups("app-db", "app"))
        proc = _start_backup()
        _wait_streaming(proc, directory)
        killed = _manager(engine).exec_run(["pkill", "-9", "-f", "sshd: root@notty"])
        assert killed.exit_code == 0
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        lines = err.strip().splitlines()
        assert lines[-1].startswith("error: backup failed: app-db/app") and "SSH" in lines[-1], err
        assert "Traceback" not in err
        assert len(_backups("app-db", "app")) == before
        assert not [p for p in directory.iterdir() if p.name.endswith(".partial")]

        # The lock went with the connection: the next run takes it and completes.
        clone = _second_clone(tmp_path)
        first = _start_backup()
        _wait_streaming(first, directory)
        second = sandbox_inv("db.backup", "--env", "sandbox", "-s", "app-db", project_root=clone,
                             extra_env=_env(), timeout=120)
        assert second.returncode == 75, second.stderr
        assert "locked on the manager" in second.stderr and f"pid {first.pid}" in second.stderr
        assert not _backups("app-db", "app", clone)
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-2000:]
        assert len(_backups("app-db", "app")) == before + 1
    finally:
        _db_psql(engine, "app-db", "DROP TABLE IF EXISTS big;")


def test_rotating_passwords_under_load_fails_no_request_and_keeps_the_rollback_target(deployed, engine):
    """Postgres (one password: the clients move blue-green, the worker with them) and
    Redis (two at once) under load on the readiness path, which logs in to every server
    as the clients do; the servers are not restarted, the old versions are removed, and
    `inv rollback` still goes to the version it went to before."""
    from ops.config import read_env_file

    before = _status()
    live, idle = before["live"], next(c for c in ("blue", "green") if c != before["live"])
    if not before["colors"].get(idle) or not before["colors"][idle].get("tag"):
        assert inv("deploy", "--env", "sandbox", "--tag", "v3", timeout=900).returncode == 0
        before = _status()
        live, idle = before["live"], next(c for c in ("blue", "green") if c != before["live"])
    rows = {r["service"]: r for r in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    servers = {s: rows[s]["tasks"][0]["container"] for s in ("app-db", "redis")}
    with loadgen.Load(deployed + "/health/ready", rate=40, threads=4) as load:
        time.sleep(1)
        results = {key: inv("secrets.rotate", key, "--env", "sandbox", timeout=900)
                   for key in ("app_db_password", "redis_password")}
        time.sleep(1)
    for key, r in results.items():
        assert r.returncode == 0, (key, r.stderr[-3000:])
    summary = loadgen.summary(load.samples)
    assert summary["requests"] > 300 and summary["failed"] == 0, summary

    kept = read_env_file(SANDBOX_PROJECT[0] / ".env.sandbox")
    assert kept["APP_DB_PASSWORD"] != PASSWORDS["APP_DB_PASSWORD"]
    assert kept["REDIS_PASSWORD"] != PASSWORDS["REDIS_PASSWORD"]
    after = _status()
    # Each rotation deployed the live tag onto the other color and put the former live
    # color back on the idle tag: the same versions as before (two rotations: the same
    # colors too).
    assert after["live"] == live and after["live_tag"] == before["live_tag"]
    assert after["colors"][idle]["tag"] == before["colors"][idle]["tag"]
    rows = {r["service"]: r for r in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    assert {s: rows[s]["tasks"][0]["container"] for s in servers} == servers  # not restarted
    manager = next(c for name, c in _sandbox_hosts(engine).items() if name.endswith("manager"))
    listed = manager.exec_run(["docker", "secret", "ls", "--format", "{{.Name}}"]).output.decode().split()
    for key in ("app_db_password", "redis_password"):
        versions = [n for n in listed if n.startswith(f"{_app()}_{key}_")]
        assert len(versions) == 2, versions  # the clients' new one and the server's first one
    code, report = _health()
    assert code == 0, [c for c in report["checks"] if not c["ok"]]

    back = inv("rollback", "--env", "sandbox", "--wait", "300", timeout=600)
    assert back.returncode == 0, back.stderr[-2000:]
    assert _status()["live_tag"] == before["colors"][idle]["tag"]
    code, report = _health()
    assert code == 0, [c for c in report["checks"] if not c["ok"]]  # the worker too, on the new secret
