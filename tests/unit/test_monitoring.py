"""Monitoring builders and parsers: settings, scrape jobs from labels, Alertmanager
routing, and what Prometheus 2.42 answers (a captured /api/v1/targets)."""

import json
from pathlib import Path

import pytest
import yaml

from ops.errors import OpsError
from ops.monitoring import promconfig, rules, settings, status

TARGETS = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
                      / "targets-2.42.json").read_text())


def test_settings_defaults_and_webhook_fallback():
    m = settings.load({}, {"BACKUP_WEBHOOK_URL": "http://b/hook"})
    assert (m.scrape_interval, m.alert_for, m.threshold("backup_max_age_hours")) == (15, 15, 26)
    assert m.webhook_url == "http://b/hook"
    own = settings.load({}, {"BACKUP_WEBHOOK_URL": "http://b", "ALERT_WEBHOOK_URL": "http://a"})
    assert own.webhook_url == "http://a"


@pytest.mark.parametrize("raw, message", [
    ({"thresholds": {"api_5xx_ratio": 2}}, r"api_5xx_ratio .*between 0 and 1, not 2"),
    ({"thresholds": {"nope": 1}}, "unknown nope"),
    ({"thresholds": {"queue_depth_max": "10; rm"}}, "queue_depth_max"),
    ({"thresholds": {"consumers_min": True}}, "consumers_min"),
    ({"scrape_interval": "soon"}, "monitoring.scrape_interval: expected a duration"),
    ({"alert_for": "-1m"}, "monitoring.alert_for"),
    ({"thresholds": []}, "thresholds: must be a mapping"),
    ("x", "monitoring: must be a mapping"),
])
def test_bad_settings_are_one_line(raw, message):
    with pytest.raises(OpsError, match=message):
        settings.load(raw, {})


def test_scrape_jobs_come_from_labels():
    labels = {"api": {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"},
              "db-exporter": {"prometheus.io/scrape": "true", "prometheus.io/port": "9187",
                              "prometheus.io/path": "/m", "ops.exports": "app-db"},
              "node-exporter": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
                                "prometheus.io/honor-labels": "true"},
              "app-db": {"ops.role": "database"}, "off": {"prometheus.io/scrape": "false"}}
    targets = promconfig.scrape_targets(labels)
    assert targets == {
        "api": {"port": 8000, "path": "/metrics", "service": "api", "role": "", "honor_labels": False},
        "db-exporter": {"port": 9187, "path": "/m", "service": "app-db", "role": "database",
                        "honor_labels": False},
        "node-exporter": {"port": 9100, "path": "/metrics", "service": "node-exporter", "role": "",
                          "honor_labels": True}}
    assert promconfig.roles(targets) == {"db-exporter": "database"}
    m = settings.load({"scrape_interval": "2s"}, {})
    prom = promconfig.prometheus(m, "staging", targets, lambda n: [f"tasks.app_{n}"],
                                 lambda n: f"app_{n}", "https://staging.example.com/")
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["api"]["dns_sd_configs"] == [{"names": ["tasks.app_api"], "type": "A", "port": 8000,
                                              "refresh_interval": "5s"}]
    # A vanished task is dropped within a third of alert_for (default 15s): never a TargetDown.
    assert [promconfig.dns_refresh(settings.load({"alert_for": v}, {})) for v in ("4s", "1m", "0s")] == [
        4 / 3, 15.0, 1.0]
    assert jobs["node-exporter"]["honor_labels"] is True and "honor_labels" not in jobs["api"]
    assert "tasks" not in jobs  # no DNS task counts unless asked (Swarm)
    assert prom["global"]["scrape_interval"] == "2s"
    assert [t["targets"] for t in jobs["blackbox"]["static_configs"]] == [
        ["https://staging.example.com/health/live"], ["https://staging.example.com/health/ready"]]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["app_alertmanager:9093"]
    for bad, why in (({"prometheus.io/port": "http"}, "must be a port number"),
                     ({"prometheus.io/port": "80", "prometheus.io/path": "metrics"}, "must start with /")):
        with pytest.raises(ValueError, match=why):
            promconfig.scrape_targets({"x": {"prometheus.io/scrape": "true", **bad}})


def test_alertmanager_routes_to_the_webhook_and_inhibits_by_node():
    with_hook = promconfig.alertmanager(settings.load({"group_wait": "1s"}, {"ALERT_WEBHOOK_URL": "http://h"}))
    assert with_hook["receivers"] == [{"name": "webhook", "webhook_configs": [
        {"url": "http://h", "send_resolved": True, "max_alerts": 50}]}]
    assert with_hook["route"]["group_wait"] == "1s"
    assert with_hook["inhibit_rules"][0]["equal"] == ["env", "node"]
    # Only a NodeDown naming its node inhibits (Swarm targets carry no node label).
    assert 'node=~".+"' in with_hook["inhibit_rules"][0]["source_matchers"]
    assert promconfig.alertmanager(settings.load({}, {}))["receivers"] == [{"name": "webhook"}]


def test_rules_follow_thresholds_and_jobs():
    m = settings.load({"alert_for": "30s", "thresholds": {"backup_max_age_hours": 2}}, {})
    by_name = {}
    for r in rules.alerts(m, ["api", "worker"])["groups"][0]["rules"]:
        by_name.setdefault(r["alert"], []).append(r)
    assert [r["expr"] for r in by_name["TargetMissing"]] == ['absent(up{job="api"})',
                                                             'absent(up{job="worker"})']
    assert by_name["BackupStale"][0]["expr"].endswith("> 7200")
    assert by_name["RedisDown"][0]["for"] == "30s"
    # A hung server keeps its exporter's scrape waiting: no pg_up at all, only `up` 0.
    roles = {"app-db-exporter": "database", "auth-db-exporter": "database", "redis-exporter": "cache"}
    by_name = {r["alert"]: r for r in rules.alerts(m, roles=roles)["groups"][0]["rules"]}
    assert by_name["PostgresDown"]["expr"] == ('pg_up == 0 or up{job="app-db-exporter"} == 0 or '
                                               'up{job="auth-db-exporter"} == 0')
    assert by_name["RedisDown"]["expr"] == 'redis_up == 0 or up{job="redis-exporter"} == 0'


def test_swarm_counts_tasks_by_dns_and_adds_its_own_rules():
    m = settings.load({}, {})
    counted = {"blue": "tasks.app_blue", "worker": "tasks.app_worker"}
    prom = promconfig.prometheus(m, "staging", {}, lambda n: [n], lambda n: f"app_{n}",
                                 "http://x", task_counts=counted)
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "tasks")
    assert [(c["labels"]["service"], c["labels"]["__param_module"], c["targets"])
            for c in job["static_configs"]] == [("blue", "tasks_blue", ["127.0.0.11:53"]),
                                                ("worker", "tasks_worker", ["127.0.0.11:53"])]
    assert {"source_labels": ["__address__"], "target_label": "__param_target"} in job["relabel_configs"]
    assert {"target_label": "__address__", "replacement": "app_blackbox:9115"} in job["relabel_configs"]
    modules = promconfig.blackbox(counted)["modules"]
    assert modules["tasks_worker"]["dns"]["query_name"] == "tasks.app_worker"
    assert "NXDOMAIN" in modules["tasks_worker"]["dns"]["valid_rcodes"]  # 0 tasks is a count
    names = {r["alert"] for r in rules.alerts(m, swarm=True)["groups"][0]["rules"]}
    local = {r["alert"] for r in rules.alerts(m)["groups"][0]["rules"]}
    assert names - local == {"ReplicasBelowDesired", "DeployLockHeld"}
    lock = next(r for r in rules.alerts(settings.load(
        {"thresholds": {"deploy_lock_ttl_seconds": 600}}, {}), swarm=True)["groups"][0]["rules"]
        if r["alert"] == "DeployLockHeld")
    assert lock["expr"] == "time() - (ops_deploy_lock_held_since_timestamp_seconds > 0) > 600"


def test_targets_parsed_from_a_real_answer_and_missing_jobs_added():
    rows = status.targets(TARGETS)
    assert len(rows) == 11 and all(r.ok for r in rows)
    assert {r.job for r in rows} >= {"api", "rabbitmq", "blackbox", "redis-exporter"}
    rows = status.with_missing(rows, {"api", "worker"})
    assert [(r.job, r.health, r.ok) for r in rows if r.job == "worker"] == [("worker", "missing", False)]
    with pytest.raises(OpsError, match="unexpected /api/v1/targets answer"):
        status.targets({"status": "error"})


def test_alerts_parsed_most_severe_first():
    answer = [{"labels": {"alertname": "ApiLatencyP99High", "severity": "warning", "service": "api"},
               "annotations": {"summary": "slow"}, "status": {"state": "active"}, "startsAt": "t1"},
              {"labels": {"alertname": "RedisDown", "severity": "critical", "service": "redis"},
               "annotations": {"summary": "down"}, "status": {"state": "active"}, "startsAt": "t2"},
              {"labels": {"alertname": "Old"}, "status": {"state": "suppressed"}}]
    assert [a.name for a in status.alerts(answer)] == ["RedisDown", "ApiLatencyP99High"]
    with pytest.raises(OpsError):
        status.alerts({"error": "x"})


def test_health_lines_for_the_monitoring_stack():
    from ops.monitoring import health
    from ops.monitoring.status import Alert, ScrapeTarget

    assert health.containers_verdict([("prometheus", True, "running, healthy"),
                                      ("blackbox", True, "running")]) == (True, "2/2 healthy")
    ok, detail = health.containers_verdict([("prometheus", True, "x"),
                                            ("redis-exporter", False, "exited (exit 1)")])
    assert not ok and detail == "1/2 healthy; redis-exporter: exited (exit 1)"

    up = ScrapeTarget("api", "10.0.0.2:8000", "up")
    assert health.targets_verdict([up, up]) == (True, "2/2 up")
    assert health.targets_verdict([]) == (False, "no scrape target")
    ok, detail = health.targets_verdict([up, ScrapeTarget("redis-exporter", "10.0.0.5:9121", "down", "x"),
                                         ScrapeTarget("api", "10.0.0.3:8000", "unknown")])
    assert not ok and detail == ("1/3 up; down: redis-exporter 10.0.0.5:9121; "
                                 "not scraped yet: api")

    assert health.alerts_verdict([]) == (True, False, "none firing")
    firing = [Alert("RedisDown", "critical", "redis", "", ""), Alert("BackupStale", "warning", "", "", "")]
    assert health.alerts_verdict(firing) == (True, True, "2 firing: BackupStale, RedisDown(redis)")


def test_the_published_address_of_a_monitoring_container():
    from types import SimpleNamespace

    from ops.monitoring import health

    def box(ports):
        return SimpleNamespace(attrs={"NetworkSettings": {"Ports": ports}})

    assert health.published(box({"9090/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32771"}]}),
                            9090) == "http://127.0.0.1:32771"
    assert health.published(box({"9090/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1"}]}),
                            9090) == "http://127.0.0.1:1"
    assert health.published(box({"9090/tcp": None}), 9090) is None  # stopped: nothing bound
    assert health.published(box(None), 9090) is None


# -- the Grafana dashboards and their provisioning ---------------------------------------
GRAFANA = Path(__file__).resolve().parents[2] / "compose" / "monitoring" / "grafana"


def test_dashboards_are_plain_promql_on_the_provisioned_datasource():
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/ops.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/ops/dashboards"
    boards = [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]
    assert {b["uid"] for b in boards} == {"ops-red", "ops-saturation", "ops-data", "ops-backups"}
    for board in boards:
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        assert board["annotations"]["list"][0]["useValueForTime"]  # deploys, dated by start time
        for p in [*board["panels"], *board["annotations"]["list"]]:
            assert p["datasource"]["uid"] == uid
            # Plain PromQL: no Grafana variables, so the integration test can evaluate each.
            for expr in [t["expr"] for t in p.get("targets", [])] + [p.get("expr", "x")]:
                assert expr and "$" not in expr, (board["uid"], p.get("title"), expr)


def test_deploy_lock_textfile_follows_the_lock(tmp_path):
    """The lock's shell lines, run by a real shell: the textfile says when it was taken
    and 0 once released; a refused acquire changes neither."""
    import subprocess

    from ops.commands import deploy_lock as lock

    def sh(command):
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True).returncode

    base = str(tmp_path)
    metric = tmp_path / "opsdemo" / "textfile" / "ops_deploy_lock.prom"
    assert sh(lock.metric_free("opsdemo", base)) == 0
    assert metric.read_text().splitlines()[-1] == f"{lock.METRIC} 0"
    assert sh(lock.acquire("opsdemo", '{"token": "00112233445566778899aabbccddeeff"}', base)) == 0
    taken = metric.read_text()
    assert int(taken.split()[-1]) > 1_700_000_000
    assert sh(lock.acquire("opsdemo", '{"token": "ffeeddccbbaa99887766554433221100"}', base)) != 0
    assert sh(lock.metric_free("opsdemo", base)) == 0  # a held lock's value is kept
    assert metric.read_text() == taken
    assert sh(lock.release_if("opsdemo", "ffeeddccbbaa99887766554433221100", base)) == 0
    assert metric.read_text() == taken  # not its holder: nothing released
    assert sh(lock.release_if("opsdemo", "00112233445566778899aabbccddeeff", base)) == 0
    assert metric.read_text().splitlines()[-1] == f"{lock.METRIC} 0"
    assert not list(metric.parent.glob("*.tmp"))


def test_desired_replicas_textfile_from_docker_service_ls(tmp_path):
    """The awk behind record_desired on `docker service ls` lines as Docker prints them
    (replicated, global, a max-per-node suffix); other stacks' prefixes are kept apart."""
    import os
    import subprocess

    from ops.commands import monitoring

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' 'app_blue replicated 2/3' 'app_green replicated 0/0' "
                    "'app_node-exporter global 2/2' 'app_worker replicated 1/1 (max 1 per node)'\n")
    fake.chmod(0o755)
    out = tmp_path / "tf"
    result = subprocess.run(["sh", "-c", monitoring.desired_replicas("app", str(out))],
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (out / "ops_swarm.prom").read_text().splitlines() == [
        "# TYPE ops_swarm_desired_replicas gauge",
        'ops_swarm_desired_replicas{service="blue"} 3',
        'ops_swarm_desired_replicas{service="green"} 0',
        'ops_swarm_desired_replicas{service="worker"} 1']
    for bad in ("app;id", "App"):
        with pytest.raises(ValueError):
            monitoring.desired_replicas(bad, str(out))
    with pytest.raises(ValueError):
        monitoring.services_rm("app", ["ok", "$(id)"])


def test_the_gateway_probe_insists_on_tls_and_verifies_against_the_private_ca():
    plain = promconfig.blackbox()["modules"]["http_2xx"]["http"]
    assert plain["fail_if_not_ssl"] is True and "tls_config" not in plain  # system roots
    private = promconfig.blackbox(ca_file=promconfig.CA_FILE)
    assert private["modules"]["http_2xx"]["http"]["tls_config"] == {
        "ca_file": "/etc/prometheus/ops/gateway-ca.crt"}


def test_the_ca_file_is_written_for_the_probe_even_when_the_system_roots_verify(tmp_path):
    from ops.monitoring.files import write_ca

    assert write_ca(tmp_path, True) is None
    assert "-----BEGIN" not in (tmp_path / "gateway-ca.crt").read_text()  # Swarm ships it anyway
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n...\n")
    assert write_ca(tmp_path, str(tmp_path / "ca.pem")) == promconfig.CA_FILE
    assert (tmp_path / "gateway-ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
