"""`--env local-swarm`: the same deploy code path on the local engine as a single-node Swarm
(Invoke's Context instead of Fabric's Connection): deploy, deploy, rollback, finish,
remove, with the gateway's identity headers checked at each step, and unused
config versions pruned."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from ops.config import read_env_file
from tests.support.swarm_mode import ask_to_leave

from .conftest import ROOT, SHARED, base_images, free_port, fresh_passwords, inv

pytestmark = pytest.mark.integration

APP = f"opstest-local-{secrets.token_hex(3)}"
REPO = f"ops-test-local-{secrets.token_hex(3)}/api"


@pytest.fixture(scope="module")
def local_swarm(engine, tmp_path_factory):
    """The local engine in Swarm mode (left again at the end of the run if the test put it
    there, and if that breaks no running container's DNS),
    an own app name, port and project directory, and two api versions."""
    import os

    from ops.wheelhouse import ensure

    was_swarm = engine.info()["Swarm"]["LocalNodeState"] == "active"
    had_gwbridge = bool(engine.networks.list(names=["docker_gwbridge"]))
    project = tmp_path_factory.mktemp("local-deploy")
    ensure(ROOT)
    # Without the wheelhouse, as in a fresh clone: `inv deploy` must fetch it itself.
    shutil.copytree(ROOT / "compose", project / "compose", ignore=shutil.ignore_patterns("wheels"))
    # A git checkout of its own: `inv deploy` without --tag builds and deploys its commit.
    git = ["git", "-C", str(project), "-c", "user.name=ops-test", "-c", "user.email=ops-test@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    dotenv = read_env_file(ROOT / ".env")
    port = free_port()
    # envs.local-swarm.deploy wins over deploy: (the more specific setting): override there,
    # or the test would act on the user's own `opsdemo-swarm`.
    # Its own CA (no OPS_TLS_DIR): the first deploy makes it, and verifies its switch with it,
    # as in a project deployed for the first time.
    CA[:] = [str(project / ".tls" / "ca.crt")]
    env = {**{k: v for k, v in os.environ.items() if k != "OPS_TLS_DIR"},
           "OPS_ROOT": str(project), "INVOKE_ENVS_LOCAL-SWARM_DEPLOY_APP": APP,
           "INVOKE_ENVS_LOCAL-SWARM_DEPLOY_GATEWAY_PORT": str(port), "API_IMAGE": REPO,
           **fresh_passwords(), **base_images()}
    python = dotenv.get("PYTHON_IMAGE") or "python:3.11-slim-bookworm"
    for tag in ("l1", "l2", "l3"):
        engine.images.build(path=str(ROOT / "compose" / "api"), tag=f"{REPO}:{tag}", rm=True, forcerm=True,
                            buildargs={"PYTHON_IMAGE": python, "APP_VERSION": tag})
    try:
        init = inv("swarm.init", "--env", "local-swarm", env=env)
        assert init.returncode == 0, init.stderr
        assert "Leader" in init.stdout
        yield env, f"https://127.0.0.1:{port}/", git
    finally:
        inv("deploy.remove", "--env", "local-swarm", "--volumes", "--yes", env=env, timeout=300)
        if not was_swarm:
            # Not now: leaving empties the embedded DNS of every running container (the
            # sandbox's hosts, other tests' stacks): the run does it last.
            ask_to_leave(SHARED, had_gwbridge)
        for image in engine.images.list(REPO):  # l1, l2 and the commits deployed untagged
            for ref in image.tags:
                engine.images.remove(ref, force=True)
    left = [s.name for s in engine.services.list()] if was_swarm else []
    assert not [name for name in left if name.startswith(APP)]
    assert not [v.name for v in engine.volumes.list() if v.name.startswith(APP)]
    assert not [n.name for n in engine.networks.list() if n.name.startswith(APP)]


CA: list[str] = []  # the project's own CA, made by its first deploy


def _identity(url) -> tuple[str, str]:
    r = requests.get(url, timeout=5, verify=CA[0])
    assert r.status_code == 200
    return r.headers["X-App-Color"], r.headers["X-App-Version"]


def test_local_deploy_rollback_finish_remove(local_swarm):
    env, url, _ = local_swarm
    steps = [(("deploy", "--tag", "l1"), ("blue", "l1")), (("deploy", "--tag", "l2"), ("green", "l2")),
             (("rollback", "--wait", "120"), ("blue", "l1"))]
    for args, expected in steps:
        r = inv(*args, "--env", "local-swarm", env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        if args[1:] == ("--tag", "l1"):  # the first deploy made the CA, and trusted it
            assert "made a local CA" in r.stderr and Path(CA[0]).is_file()
        assert {_identity(url) for _ in range(10)} == {expected}
    # --wait: the worker (it follows the app's image) has rolled back too when it returns.
    assert "followers rolled back" in r.stdout
    worker = json.loads(inv("deploy.status", "--env", "local-swarm", "--json", env=env).stdout)[
        "followers"]["worker"]
    assert (worker["tag"], worker["running"]) == ("l1", worker["replicas"]), worker
    finished = inv("deploy.finish", "--env", "local-swarm", env=env)
    assert finished.returncode == 0 and "green (l2) scaled to 0" in finished.stdout
    status = inv("deploy.status", "--env", "local-swarm", env=env)
    assert "live:  blue (l1)" in status.stdout and "0/0 running" in status.stdout
    history = inv("deploy.history", "--env", "local-swarm", env=env).stdout
    assert [line.split()[1] for line in history.splitlines()] == ["deploy", "deploy", "rollback", "finish"]
    # Rolling back to a scaled-down color scales it up and health-checks it first.
    back = inv("rollback", "--env", "local-swarm", env=env, timeout=600)
    assert back.returncode == 0, back.stderr[-2000:]
    assert "scaling it to 2 first" in back.stderr and _identity(url) == ("green", "l2")
    # Without --wait the worker rolls back in the background, and gets there on its own.
    assert "followers rolling back in the background" in back.stdout
    deadline = time.monotonic() + 90
    while True:
        worker = json.loads(inv("deploy.status", "--env", "local-swarm", "--json", env=env).stdout)[
            "followers"]["worker"]
        if (worker["tag"], worker["running"], worker["update"]) == ("l2", worker["replicas"], "completed"):
            break
        assert time.monotonic() < deadline, worker
        time.sleep(1)
    refused = inv("deploy.remove", "--env", "local-swarm", env=env, input="")
    assert refused.returncode == 1 and "refusing without --yes" in refused.stderr
    assert _identity(url) == ("green", "l2")  # nothing was removed


def test_switches_under_load_from_the_same_address_are_verified_not_rate_limited(local_swarm):
    """A load test from this machine shares the deployer's address: the gateway answers
    it 429 (100 r/s, burst 200). The switch's verification must not: two rollbacks
    under such a load both succeed, each color proven live."""
    import time

    from tests.support import loadgen

    env, url, _ = local_swarm
    with loadgen.Load(url, rate=400, threads=8, max_seconds=120, verify=CA[0]) as load:
        deadline = time.monotonic() + 20
        while not any(s.status == 429 for s in load.samples) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(s.status == 429 for s in load.samples), "the load never reached the limit"
        for expected in (("blue", "l1"), ("green", "l2")):
            r = inv("rollback", "--env", "local-swarm", env=env, timeout=600)
            assert r.returncode == 0, r.stderr[-3000:]
            assert "switching back" not in r.stderr
            assert f"rolled back to {expected[0]}/{expected[1]}" in r.stdout
        limited = sum(s.status == 429 for s in load.samples)
    assert limited > 0 and load.samples[-1].t < 120 + 5  # bounded in time, by itself
    assert _identity(url + "health/live") == ("green", "l2")  # "/" may still answer 429


def test_deploy_without_tag_builds_the_current_commit_and_serves_it(local_swarm, engine):
    env, url, git = local_swarm
    old_configs = _configs(engine)
    assert len(old_configs) == 1
    # An edited nginx.conf is a new config version; the old one is pruned once unused.
    conf = Path(env["OPS_ROOT"]) / "compose" / "gateway" / "nginx.conf"
    conf.write_text(conf.read_text() + "# edited for this release\n")
    subprocess.run([*git, "commit", "-qam", "gateway tweak"], check=True, capture_output=True)
    commit = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    assert not engine.images.list(f"{REPO}:{commit}")
    r = inv("deploy", "--env", "local-swarm", env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"building {REPO}:{commit}" in r.stderr and f"/{commit} is live" in r.stdout
    assert "fetching the api's dependency wheels" in r.stderr  # a fresh clone has none
    assert {_identity(url)[1] for _ in range(10)} == {commit}  # the version header names it
    new_configs = _configs(engine)
    assert len(new_configs) == 1 and new_configs != old_configs
    assert f"removed unused configs: {old_configs[0]}" in r.stderr
    gateway = engine.services.get(f"{APP}_gateway").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert [c["ConfigName"] for c in gateway["Configs"]] == new_configs
    # Both colors still use the one version of each secret (the four passwords, the
    # gateway's certificate and key): none was removed.
    assert len(engine.secrets.list(filters={"label": f"ops.app={APP}"})) == 6


def _replicas(engine, name) -> int:
    return engine.services.get(f"{APP}_{name}").attrs["Spec"]["Mode"]["Replicated"]["Replicas"]


def test_scale_in_place_is_proven_and_kept_by_the_next_deploy(local_swarm, engine):
    """`inv scale api=3,worker=2` on Swarm: the live color gets 3 tasks, each answering
    through the gateway, and the worker 2; the next deploy starts the new color with 3
    and leaves the worker at 2. What cannot scale is refused and changes nothing."""
    env, url, _ = local_swarm
    live = _identity(url)[0]
    r = inv("scale", "api=3,worker=2", "--env", "local-swarm", env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{live}: 3 replica(s) healthy, 3 answering through the gateway" in r.stdout
    assert _replicas(engine, live) == 3 and _replicas(engine, "worker") == 2
    for spec, why in (("app-db=2", "stateful (role database)"), ("rabbitmq=2", "role broker"),
                      ("gateway=2", "in host mode"), ("api=0", "live color"),
                      ("nope=2", "unknown service 'nope'")):
        bad = inv("scale", spec, "--env", "local-swarm", env=env)
        assert bad.returncode == 1 and why in bad.stderr and "Traceback" not in bad.stderr
    assert _replicas(engine, "app-db") == 1 and _replicas(engine, live) == 3
    d = inv("deploy", "--tag", "l1", "--env", "local-swarm", env=env, timeout=600)
    assert d.returncode == 0, d.stderr[-3000:]
    assert "kept: api=3, worker=2" in d.stderr
    new = _identity(url)[0]
    assert new != live and _replicas(engine, new) == 3 and _replicas(engine, "worker") == 2
    assert len({requests.get(url, timeout=5, verify=CA[0]).headers["X-Instance"] for _ in range(40)}) == 3
    history = inv("deploy.history", "--env", "local-swarm", env=env).stdout
    assert "scale    ok" in history and f"{live}=3 worker=2" in history  # the color it scaled


def test_monitoring_on_this_engine_is_reached_without_a_tunnel(local_swarm, engine):
    """On this machine's engine the monitoring part runs in the stack like on a remote
    cluster, and its UIs are the tasks' own addresses (nothing published): every target
    up, each api task of both colors among them; down removes it and its secret."""
    env, _, _ = local_swarm
    env = {**env, "INVOKE_MONITORING_SCRAPE_INTERVAL": "3s",
           "INVOKE_MONITORING_EVALUATION_INTERVAL": "2s"}
    up = inv("monitoring.up", "--env", "local-swarm", env=env, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    assert re.search(r"^  targets: (\d+)/\1 up$", up.stdout, re.M), up.stdout
    urls = dict(line.split()[:2] for line in up.stdout.splitlines()[1:3])
    assert set(urls) == {"prometheus", "alertmanager"}
    assert requests.get(urls["prometheus"] + "-/ready", timeout=5).status_code == 200
    assert not [p for s in engine.services.list(filters={"label": f"com.docker.stack.namespace={APP}"})
                for p in (s.attrs["Endpoint"].get("Ports") or [])
                if s.name.split("_", 1)[1] in ("prometheus", "alertmanager")]
    deadline = time.monotonic() + 90
    while (status := inv("monitoring.status", "--env", "local-swarm", "--json", env=env)
           ).returncode != 0 and time.monotonic() < deadline:
        time.sleep(3)
    assert status.returncode == 0, status.stdout
    api = [t for t in json.loads(status.stdout) if t["job"] == "api"]
    running = sum(_replicas(engine, c) for c in ("blue", "green"))
    assert len(api) == running >= 4, api  # the live color's and the idle one's
    def am_secrets():
        return [s.name for s in engine.secrets.list(filters={"label": f"ops.app={APP}"})
                if "alertmanager_config" in s.name]

    assert len(am_secrets()) == 1
    down = inv("monitoring.down", "--env", "local-swarm", env=env, timeout=300)
    assert down.returncode == 0 and "prometheus" in down.stdout, down.stderr
    assert not am_secrets()
    gone = inv("monitoring.status", "--env", "local-swarm", env=env)
    assert gone.returncode == 1 and "monitoring is not running" in gone.stderr


def _configs(engine) -> list[str]:
    return [c.name for c in engine.configs.list(filters={"label": f"com.docker.stack.namespace={APP}"})]


def test_cluster_state_is_the_same_from_the_engine_api_and_the_docker_cli(local_swarm):
    """The snapshot behind ps/health reads the Engine API through curl, or, when
    DOCKER_HOST points elsewhere or curl is missing, the docker CLI: both say the same."""
    env, _, _ = local_swarm
    via_api = inv("ps", "--env", "local-swarm", "--json", env=env)
    via_cli = inv("ps", "--env", "local-swarm", "--json",
                  env={**env, "DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert via_api.returncode == 0 and via_cli.returncode == 0, via_api.stderr + via_cli.stderr
    rows = json.loads(via_api.stdout)
    assert rows == json.loads(via_cli.stdout)
    assert {"app-db", "auth-db", "gateway", "rabbitmq", "redis", "worker"} <= {r["service"] for r in rows}
    assert sum(r["live"] for r in rows) == 1


def test_health_checks_the_swarm_stack_on_this_engine(local_swarm):
    """health --env local-swarm: the deployed stack's tasks and this node, not the Compose
    stack; a second run starts the broker's ping where the first found it, and agrees."""
    env, _, _ = local_swarm
    places = Path(env["OPS_ROOT"]) / ".cache" / "health-places-local-swarm.json"
    places.unlink(missing_ok=True)
    reports = []
    for _ in range(2):
        r = inv("health", "--env", "local-swarm", "--json", env=env, timeout=120)
        report = json.loads(r.stdout)
        assert r.returncode == 0 and report["healthy"], r.stdout[-3000:] + r.stderr[-500:]
        reports.append({(c["service"], c["check"].split(" on ")[0]) for c in report["checks"]})
    assert reports[0] == reports[1]
    assert {("app-db", "SELECT 1"), ("auth-db", "SELECT 1"), ("redis", "PING"),
            ("rabbitmq", "ping"), ("deploy lock", "state")} <= reports[0]
    assert any(service.startswith("node ") for service, _ in reports[0])
    assert any(check.startswith("/health/ready via") for _, check in reports[0])
    (place,) = json.loads(places.read_text())
    assert place["role"] == "broker" and place["container"]


def test_logs_on_this_engine_follow_one_request_and_are_bounded(local_swarm):
    """logs --env local-swarm: one request's lines from the gateway and the live color,
    read from this engine's containers, in time order; plain logs end on their own."""
    env, url, _ = local_swarm
    rid = f"trace-{uuid.uuid4().hex}"
    r = requests.get(url, headers={"X-Request-ID": rid}, timeout=5, verify=CA[0] if CA else False)
    assert r.status_code == 200 and r.headers["X-Request-ID"] == rid
    deadline = time.monotonic() + 30
    while True:  # the engine writes a container's line a moment after it is printed
        traced = inv("logs", "--env", "local-swarm", "--request", rid, env=env, timeout=120)
        sources = [line.split(" ", 2)[1] for line in traced.stdout.splitlines()]
        if traced.returncode == 0 and len({s.split(".")[0] for s in sources}) >= 2:
            break
        assert time.monotonic() < deadline, traced.stdout + traced.stderr
        time.sleep(1)
    assert any("_gateway." in s and "@" in s for s in sources), sources
    assert any(f"_{r.headers['X-App-Color']}." in s for s in sources), sources
    stamps = [line.split(" ", 1)[0] for line in traced.stdout.splitlines()]
    assert stamps == sorted(stamps) and all(rid in line for line in traced.stdout.splitlines())
    plain = inv("logs", "--env", "local-swarm", "-s", "gateway", "--tail", "3", env=env, timeout=120)
    lines = plain.stdout.splitlines()
    assert plain.returncode == 0 and lines, plain.stderr
    assert all("_gateway." in line.split("|", 1)[0] for line in lines), lines


def test_backups_of_the_stack_on_this_engine(local_swarm, engine):
    """db.* --env local-swarm: the deployed stack's own databases (its tasks' containers,
    not the Compose stack's), filed under backups/local-swarm, proven by a restore drill,
    and put back with the name typed ahead; the metrics reach the stack's textfile dir."""
    from ops.backup import layout, manifest

    env, _, _ = local_swarm
    if inv("deploy.status", "--env", "local-swarm", env=env).returncode != 0 or \
            not engine.services.list(filters={"name": f"{APP}_app-db"}):
        assert inv("deploy", "--env", "local-swarm", "--tag", "l1", env=env, timeout=600).returncode == 0

    def psql(sql: str) -> str:
        deadline = time.monotonic() + 120
        while not (found := engine.containers.list(
                filters={"label": f"com.docker.swarm.service.name={APP}_app-db", "status": "running"})):
            assert time.monotonic() < deadline
            time.sleep(1)
        code, out = found[0].exec_run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                       "-U", "app", "-d", "app", "-c", sql])
        assert code == 0, out.decode()
        return out.decode().strip()

    psql("CREATE TABLE IF NOT EXISTS swarm_notes (id int PRIMARY KEY); TRUNCATE swarm_notes; "
         "INSERT INTO swarm_notes SELECT generate_series(1, 300);")
    r = inv("db.backup", "--env", "local-swarm", env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [ln.split(":")[0] for ln in r.stdout.splitlines()] == ["app-db/app", "auth-db/auth"]
    root = Path(env["OPS_ROOT"]) / "backups" / "local-swarm"
    app = layout.backups_in(root / "app-db" / "app")[-1]
    data = manifest.read(app.manifest_path)
    assert data["env"] == "local-swarm" and data["tables"]["public.swarm_notes"] == 300
    assert not (Path(env["OPS_ROOT"]) / "backups" / "local").exists()  # never the Compose stack's
    drill = inv("db.verify", "--env", "local-swarm", "--file", str(app.path), "--level", "restore",
                env=env, timeout=600)
    assert drill.returncode == 0 and "row counts equal" in drill.stdout, drill.stderr
    textfile = next((Path(env["OPS_ROOT"]) / ".cache" / "deploy").glob("*/textfile/ops_backup.prom"))
    assert 'env="local-swarm"' in textfile.read_text()

    psql("DELETE FROM swarm_notes WHERE id > 5;")
    restored = inv("db.restore", "--env", "local-swarm", "-s", "app-db", "--file", str(app.path),
                   "--confirm", "app", env=env, timeout=600)
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert psql("SELECT count(*) FROM swarm_notes") == "300"
    listed = inv("db.list", "--env", "local-swarm", env=env)
    assert listed.returncode == 0 and "app-db" in listed.stdout and "restore" in listed.stdout


def test_rollback_to_any_kept_release_not_only_the_previous_color(local_swarm):
    """`rollback --to TAG`: a tag on neither color (l3 live; the idle one runs whatever
    the tests before left live), whose release is kept on the manager: deployed onto the
    idle color with its worker and switched; an unknown tag lists the kept ones; the
    live tag says so."""
    env, url, _ = local_swarm
    r = inv("deploy", "--tag", "l3", "--env", "local-swarm", env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    live = _identity(url)
    assert live[1] == "l3"
    status = json.loads(inv("deploy.status", "--env", "local-swarm", "--json", env=env).stdout)
    idle = "green" if live[0] == "blue" else "blue"
    target = next(t for t in ("l1", "l2") if t != status["colors"][idle]["tag"])
    unknown = inv("rollback", "--to", "l9", "--env", "local-swarm", env=env)
    assert unknown.returncode == 1 and "no release of l9 is kept on the manager" in unknown.stderr
    kept = unknown.stderr.split("(kept, newest first: ")[1].split(")")[0].split(", ")
    assert kept[0] == "l3" and {"l1", "l2"} <= set(kept), unknown.stderr
    assert _identity(url) == live  # nothing changed
    to = inv("rollback", "--to", target, "--env", "local-swarm", "--json", env=env, timeout=600)
    assert to.returncode == 0, to.stderr[-2000:]
    rec = json.loads(to.stdout)
    assert (rec["from_color"], rec["from_tag"], rec["to_color"], rec["to_tag"]) == (
        live[0], "l3", idle, target), rec
    assert {_identity(url) for _ in range(10)} == {(idle, target)}
    worker = json.loads(inv("deploy.status", "--env", "local-swarm", "--json", env=env).stdout)[
        "followers"]["worker"]
    assert worker["tag"] == target, worker  # the release's worker came back with it
    again = inv("rollback", "--to", target, "--env", "local-swarm", env=env)
    assert again.returncode == 1 and f"{target} is already live" in again.stderr
