"""The monitoring profile against the real stack: promtool and amtool on the rendered
configuration (with a unit test for every alert), every target up, a stopped Redis
reaching a webhook receiver and resolving, and a stale backup textfile firing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from ops.monitoring import promconfig, rules, settings
from tests.support.receiver import Receiver

from .conftest import ROOT, base_images, inv

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "monitoring"
IMAGE_VAR = "PROMETHEUS_IMAGE"


def _tool(engine, workdir: Path, *argv) -> tuple[int, str]:
    """promtool/amtool from the stack's own monitoring image, on files in `workdir`."""
    image = base_images().get(IMAGE_VAR) or pytest.fail(f"{IMAGE_VAR} not in .env")
    workdir.chmod(0o755)
    for f in workdir.iterdir():
        f.chmod(0o644)
    c = engine.containers.run(image, list(argv[1:]), entrypoint=argv[0], detach=True,
                              volumes={str(workdir): {"bind": "/etc/prometheus/ops", "mode": "ro"}},
                              working_dir="/etc/prometheus/ops", network_mode="none")
    try:
        code = c.wait(timeout=60)["StatusCode"]
        return code, c.logs().decode(errors="replace")
    finally:
        c.remove(force=True)


def test_promtool_and_amtool_accept_the_rendered_configuration(engine, tmp_path):
    m = settings.load({}, {"ALERT_WEBHOOK_URL": "http://host.docker.internal:9/hook"})
    targets = promconfig.scrape_targets({"api": {"prometheus.io/scrape": "true",
                                                 "prometheus.io/port": "8000"},
                                         "redis-exporter": {"prometheus.io/scrape": "true",
                                                            "prometheus.io/port": "9121",
                                                            "ops.exports": "redis"},
                                         "app-db-exporter": {"prometheus.io/scrape": "true",
                                                             "prometheus.io/port": "9187",
                                                             "ops.exports": "app-db"},
                                         "redis": {"ops.role": "cache"},
                                         "app-db": {"ops.role": "database"}})
    # As on Swarm: tasks counted by DNS probes, and the Swarm-only rules.
    counted = {"blue": "tasks.opsdemo_blue", "worker": "tasks.opsdemo_worker"}
    prom = promconfig.prometheus(m, "local", targets, lambda n: [n], lambda n: n,
                                 "https://gateway:8080", node="local", task_counts=counted)
    files = {"prometheus.yml": prom, "alerts.yml": rules.alerts(m, sorted(targets), swarm=True,
                                                        roles=promconfig.roles(targets)),
             "alertmanager.yml": promconfig.alertmanager(m),
             "blackbox.yml": promconfig.blackbox(counted)}
    for name, data in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(FIXTURES / "alerts_test.yml", tmp_path)
    for argv in (("/bin/promtool", "check", "config", "prometheus.yml"),
                 ("/bin/promtool", "check", "rules", "alerts.yml"),
                 ("/bin/promtool", "test", "rules", "alerts_test.yml"),
                 ("/bin/amtool", "check-config", "alertmanager.yml"),
                 ("/bin/blackbox_exporter", "--config.check", "--config.file=blackbox.yml")):
        code, out = _tool(engine, tmp_path, *argv)
        assert code == 0, f"{' '.join(argv)}:\n{out}"
    # ... and that run proves the rules: every alert has a promtool test.
    cases = yaml.safe_load((FIXTURES / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for group in cases for case in group["alert_rule_test"]}
    assert {r["alert"] for r in files["alerts.yml"]["groups"][0]["rules"]} <= tested


@pytest.fixture(scope="module")
def monitored(stack_env, tmp_path_factory):
    """The test stack with its monitoring profile, short intervals, and a webhook receiver."""
    receiver = Receiver()
    backups = tmp_path_factory.mktemp("monitoring-backups")
    env = {**stack_env, **base_images(), "ALERT_WEBHOOK_URL": receiver.url,
           "BACKUP_DIR": str(backups),
           # An off-site remote (a directory here), so the repository's copy has its metric.
           "RCLONE_CONFIG_MONOFF_TYPE": "local",
           "INVOKE_BACKUP_OFFSITE_REMOTES": f"monoff:{backups / 'offsite'}",
           "INVOKE_MONITORING_SCRAPE_INTERVAL": "3s", "INVOKE_MONITORING_EVALUATION_INTERVAL": "2s",
           "INVOKE_MONITORING_ALERT_FOR": "2s", "INVOKE_MONITORING_GROUP_WAIT": "1s",
           "INVOKE_MONITORING_GROUP_INTERVAL": "2s"}
    up = inv("up", env=env, timeout=600)
    assert up.returncode == 0, up.stderr[-2000:]
    started = inv("monitoring.up", env=env, timeout=300)
    assert started.returncode == 0, started.stderr[-2000:]
    assert re.search(r"^  targets: (\d+)/\1 up$", started.stdout, re.M), started.stdout
    assert re.search(r"^  alerts: (none firing|\d+ firing: )", started.stdout, re.M), started.stdout
    try:
        yield env, receiver, backups / "metrics"
    finally:
        receiver.close()
        down = inv("monitoring.down", env=env, timeout=300)
        shutil.rmtree(ROOT / ".cache" / "monitoring" / env["COMPOSE_PROJECT_NAME"],
                      ignore_errors=True)
        assert down.returncode == 0, down.stderr[-2000:]


def _until(fn, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_every_target_is_up_and_nothing_fires(monitored, engine):
    env, _, _ = monitored
    # The rules this Prometheus reads are its project's own: another stack from the
    # same checkout (the user's) never reloads a test's 2 s thresholds.
    project = env["COMPOSE_PROJECT_NAME"]
    (prom,) = engine.containers.list(filters={"label": [f"com.docker.compose.project={project}",
                                                        "com.docker.compose.service=prometheus"]})
    sources = {m["Destination"]: m["Source"] for m in prom.attrs["Mounts"]}
    assert sources["/etc/prometheus/ops"] == str(ROOT / ".cache" / "monitoring" / project
                                                 / "prometheus")
    status = _until(lambda: inv("monitoring.status", "--json", env=env))
    assert status.returncode == 0, status.stdout + status.stderr
    jobs = {row["job"] for row in json.loads(status.stdout)}
    assert {"api", "app-db-exporter", "auth-db-exporter", "redis-exporter", "gateway-exporter",
            "node-exporter", "rabbitmq", "blackbox", "prometheus", "alertmanager"} <= jobs
    quiet = _until(lambda: inv("monitoring.alerts", env=env), timeout=30)
    assert quiet.returncode == 0 and "no alert firing" in quiet.stdout, quiet.stdout
    # `inv health` has lines for the monitoring stack itself, now that it runs.
    health = inv("health", "--json", env=env)
    assert health.returncode == 0, health.stdout
    rows = {r["check"]: r for r in json.loads(health.stdout)["checks"] if r["service"] == "monitoring"}
    assert set(rows) == {"containers", "prometheus targets", "alerts"}
    assert rows["containers"]["detail"] == "8/8 healthy" and rows["alerts"]["detail"] == "none firing"
    assert rows["prometheus targets"]["ok"] and " up" in rows["prometheus targets"]["detail"]


def test_every_replica_is_scraped_after_scaling(monitored):
    env, _, _ = monitored
    scaled = inv("scale", "api=3", env=env, timeout=300)
    assert scaled.returncode == 0, scaled.stderr[-2000:]

    def three():
        r = inv("monitoring.status", "--json", env=env)
        rows = json.loads(r.stdout) if r.stdout.strip().startswith("[") else []
        r.returncode = 0 if sum(1 for x in rows if x["job"] == "api" and x["ok"]) == 3 else 1
        return r

    assert _until(three, timeout=60).returncode == 0
    assert inv("scale", "api=1", env=env, timeout=300).returncode == 0


def test_a_stopped_redis_reaches_the_webhook_and_recovery_resolves_it(monitored, engine):
    env, receiver, _ = monitored
    project = env["COMPOSE_PROJECT_NAME"]
    redis = engine.containers.list(filters={"label": [f"com.docker.compose.project={project}",
                                                      "com.docker.compose.service=redis"]})[0]
    redis.stop()
    try:
        _, fired = receiver.wait_for("RedisDown", "firing")
        assert fired["labels"]["service"] == "redis" and fired["labels"]["severity"] == "critical"
        listed = inv("monitoring.alerts", "--json", env=env)
        assert listed.returncode == 1 and "RedisDown" in {a["name"] for a in json.loads(listed.stdout)}
        health = json.loads(inv("health", "--json", env=env).stdout)["checks"]
        (alerts,) = [r for r in health if (r["service"], r["check"]) == ("monitoring", "alerts")]
        assert alerts["status"] == "warn" and "RedisDown(redis)" in alerts["detail"]
    finally:
        redis.start()
    receiver.wait_for("RedisDown", "resolved")


DASHBOARDS = ROOT / "compose" / "monitoring" / "grafana" / "dashboards"
COMPARISON = re.compile(r"\s(==|!=|>=|<=|>|<)\s")


def signal(expr: str) -> str:
    """What an alert compares: the expression without its last top-level comparison, or
    inside absent(). That part must return data on a healthy stack (the comparison then
    decides whether it fires)."""
    if expr.startswith("absent(") and expr.endswith(")"):
        return expr[len("absent("):-1]
    depth, cut = 0, None
    for i, ch in enumerate(expr):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if depth == 0 and COMPARISON.match(expr, i):
            cut = i
    return expr[:cut] if cut is not None else expr


# Rules whose metric exists only once `inv dr.drill` has passed (minutes of its own;
# test_offsite runs it, and test_pitr_pure checks the metric is written from its record).
AFTER_A_DRILL = {"DrDrillOverdue"}


def test_every_dashboard_and_rule_expression_returns_data(monitored):
    env, _, _ = monitored
    # Real backups and a restore drill, into the directory node-exporter reads: the
    # backup panels and rules need their metrics.
    for argv in (("db.backup",), ("db.verify", "--latest", "--level", "restore")):
        done = inv(*argv, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    exprs = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        exprs += [(f"{path.name}: annotation {a['name']}", a["expr"])
                  for a in board["annotations"]["list"]]
        exprs += [(f"{path.name}: {p['title']}", t["expr"]) for p in board["panels"]
                  for t in p["targets"]]
    assert len(exprs) > 30
    loaded = _query_api(env, "/api/v1/rules")["data"]["groups"]
    rules_ = [r for g in loaded for r in g["rules"]]
    assert {r["name"] for r in rules_} >= {"TargetDown", "RedisDown", "BackupStale"}
    for r in rules_:  # the rule itself must evaluate ...
        exprs.append((f"rule {r['name']} (whole)", r["query"]))
    failures: list[str] = []

    def check(what: str, expr: str, need_data: bool) -> None:
        answer = _query_api(env, "/api/v1/query?query=" + urllib.parse.quote(expr), ok=False)
        if answer.get("status") != "success":
            failures.append(f"{what}: {answer.get('error')}  [{expr}]")
        elif need_data and not answer["data"]["result"]:
            failures.append(f"{what}: no data  [{expr}]")

    deadline = time.monotonic() + 60  # rate() over fresh counters needs two scrapes
    while True:
        failures.clear()
        for what, expr in exprs:
            check(what, expr, need_data=not what.endswith("(whole)"))
        for r in rules_:  # ... and what it compares must have data on a healthy stack
            check(f"rule {r['name']} (signal)", signal(r["query"]), need_data=r["name"] not in AFTER_A_DRILL)
        if not failures or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert not failures, "\n".join(failures)


def _query_api(env, path: str, ok: bool = True) -> dict:
    import requests

    port = subprocess.run(["docker", "compose", "-p", env["COMPOSE_PROJECT_NAME"], "port",
                           "prometheus", "9090"], capture_output=True, text=True, check=True)
    address = port.stdout.strip().replace("0.0.0.0:", "127.0.0.1:")
    resp = requests.get(f"http://{address}{path}", timeout=10)
    if ok:
        resp.raise_for_status()
    return resp.json()


def test_a_stale_backup_fires_its_alert(monitored):
    env, receiver, metrics = monitored
    old = time.time() - 30 * 3600
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / "ops_backup.prom").write_text(
        "# TYPE ops_backup_last_success_timestamp_seconds gauge\n"
        f'ops_backup_last_success_timestamp_seconds{{env="local",service="app-db",database="app"}} {old}\n')
    (metrics / "ops_backup.prom").chmod(0o644)
    _, fired = receiver.wait_for("BackupStale", "firing")
    assert fired["labels"]["database"] == "app"


def test_grafana_without_its_password_is_refused_and_nothing_changes(monitored, engine):
    env, _, _ = monitored
    project = env["COMPOSE_PROJECT_NAME"]
    before = sorted(c.name for c in engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}))
    refused = inv("monitoring.up", env={**env, "GRAFANA_IMAGE": "grafana/grafana-oss:10.4.2",
                                        "GRAFANA_ADMIN_PASSWORD": ""})
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().endswith(
        "GRAFANA_IMAGE is set but GRAFANA_ADMIN_PASSWORD is not: add it to .env (or unset "
        "GRAFANA_IMAGE)"), refused.stderr
    after = sorted(c.name for c in engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}))
    assert after == before
