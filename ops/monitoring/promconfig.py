"""prometheus.yml, alertmanager.yml and blackbox.yml as data (pure).

Scrape targets come from the stack itself: every service labelled
`prometheus.io/scrape: "true"` (with `prometheus.io/port` and optional
`prometheus.io/path`) is one job, found by DNS so that every replica is scraped: the
service name on Compose (Docker's DNS answers with each container), `tasks.<service>`
on Swarm. A service added to compose.yaml with those labels is scraped everywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .settings import Monitoring

SCRAPE = "prometheus.io/scrape"
PORT = "prometheus.io/port"
PATH = "prometheus.io/path"
EXPORTS = "ops.exports"  # an exporter's label: the service whose metrics it translates
ROLE = "ops.role"
# The scraped series' own labels win (node_exporter's textfiles name the service and
# environment a backup or the stack's replicas are about).
HONOR = "prometheus.io/honor-labels"
BLACKBOX_PORT = 9115
ALERTMANAGER_PORT = 9093
PROBES = {"live": "/health/live", "ready": "/health/ready"}
DOCKER_DNS = "127.0.0.11:53"  # the engine's resolver, inside every container
TASKS_PROBE = "tasks"  # the `probe` label of the DNS probes counting a service's tasks


def _duration(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(seconds * 1000)}ms"


def scrape_targets(labels_by_service: Mapping[str, Mapping]) -> dict[str, dict]:
    """{service: {port, path, service, role}} of the services that ask to be scraped
    (`service`, `role`: what an exporter exports and that service's ops.role). A bad
    port label is a mistake in the compose file: ValueError naming it."""
    out = {}
    for name, labels in sorted(labels_by_service.items()):
        if str(labels.get(SCRAPE, "")).lower() != "true":
            continue
        port = str(labels.get(PORT, ""))
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"service {name}: label {PORT} must be a port number, not {port!r}")
        path = str(labels.get(PATH) or "/metrics")
        if not path.startswith("/"):
            raise ValueError(f"service {name}: label {PATH} must start with /, not {path!r}")
        exported = str(labels.get(EXPORTS) or name)
        out[name] = {"port": int(port), "path": path, "service": exported,
                     "role": str((labels_by_service.get(exported) or {}).get(ROLE) or ""),
                     "honor_labels": str(labels.get(HONOR, "")).lower() == "true"}
    return out


def dns_refresh(m: Monitoring) -> float:
    """How often each job's DNS names are resolved again. A task that went away (a
    deploy, a restart) is scraped at its old address until then, and fails: refreshed
    within a third of `alert_for`, that can never hold long enough to fire TargetDown."""
    return min(15.0, max(1.0, m.alert_for / 3))


def roles(targets: Mapping[str, dict]) -> dict[str, str]:
    """{job: ops.role of the service it exports} (rules.alerts' `roles`)."""
    return {name: t["role"] for name, t in targets.items() if t.get("role")}


def prometheus(m: Monitoring, env: str, targets: Mapping[str, dict],
               dns_names: Callable[[str], list[str]], address: Callable[[str], str],
               public_url: str, node: str | None = None,
               task_counts: Mapping[str, str] | None = None) -> dict:
    """The whole prometheus.yml. `dns_names(service)` gives the names to resolve for a
    service's replicas, `address(service)` one reachable address (Alertmanager,
    blackbox); `public_url` is what users reach (probed through blackbox).
    `task_counts` ({service: DNS name}, Swarm): each service's serving tasks are
    counted by a DNS probe of that name (probe_dns_answer_rrs), which
    ReplicasBelowDesired compares with the replicas the stack asks for."""
    static_labels = [{"target_label": "env", "replacement": env}]
    if node:
        static_labels.append({"target_label": "node", "replacement": node})
    jobs = []
    for name, t in targets.items():
        jobs.append({
            "job_name": name,
            "metrics_path": t["path"],
            **({"honor_labels": True} if t.get("honor_labels") else {}),
            "dns_sd_configs": [{"names": dns_names(name), "type": "A", "port": t["port"],
                                "refresh_interval": _duration(dns_refresh(m))}],
            "relabel_configs": [{"target_label": "service", "replacement": t["service"]},
                                *static_labels],
        })
    jobs.append({
        "job_name": "blackbox",
        "metrics_path": "/probe",
        "params": {"module": ["http_2xx"]},
        "static_configs": [{"targets": [public_url.rstrip("/") + path],
                            "labels": {"probe": probe}} for probe, path in PROBES.items()],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": f"{address('blackbox')}:{BLACKBOX_PORT}"},
            {"target_label": "service", "replacement": "gateway"},
            *static_labels,
        ],
    })
    if task_counts:
        jobs.append({
            "job_name": "tasks",
            "metrics_path": "/probe",
            "static_configs": [{"targets": [DOCKER_DNS],
                                "labels": {"service": name, "probe": TASKS_PROBE,
                                           "__param_module": module_name(name)}}
                               for name in sorted(task_counts)],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_module"], "target_label": "instance"},
                {"target_label": "__address__",
                 "replacement": f"{address('blackbox')}:{BLACKBOX_PORT}"},
                *static_labels,
            ],
        })
    return {
        "global": {"scrape_interval": _duration(m.scrape_interval),
                   "evaluation_interval": _duration(m.evaluation_interval),
                   "external_labels": {"env": env}},
        "rule_files": ["/etc/prometheus/ops/alerts.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"{address('alertmanager')}:{ALERTMANAGER_PORT}"]}]}]},
        "scrape_configs": jobs,
    }


def alertmanager(m: Monitoring) -> dict:
    """Group by alert and service, resolve notices too; a node that is down silences the
    alerts of what runs on it. Without a webhook the alerts are still kept (and listed
    by `inv monitoring.alerts`), they just go nowhere."""
    receiver = {"name": "webhook"}
    if m.webhook_url:
        receiver["webhook_configs"] = [{"url": m.webhook_url, "send_resolved": True,
                                        "max_alerts": 50}]
    return {
        "route": {"receiver": "webhook", "group_by": ["alertname", "env", "service"],
                  "group_wait": _duration(m.group_wait),
                  "group_interval": _duration(m.group_interval), "repeat_interval": "4h"},
        "receivers": [receiver],
        # Only a NodeDown that names its node: on Swarm DNS discovery cannot tell which
        # node a target runs on, and a label missing on both sides would count as equal.
        "inhibit_rules": [{"source_matchers": ['alertname="NodeDown"', 'node=~".+"'],
                           "target_matchers": ['alertname!="NodeDown"'],
                           "equal": ["env", "node"]}],
    }


def module_name(service: str) -> str:
    return f"tasks_{service}"


CA_FILE = "/etc/prometheus/ops/gateway-ca.crt"  # the gateway's private CA, beside blackbox.yml


def blackbox(task_counts: Mapping[str, str] | None = None, ca_file: str | None = None) -> dict:
    """The HTTP probe, and one DNS module per counted service (a DNS module names the
    query itself; the probe's target is the resolver). NXDOMAIN is a valid answer: no
    task serving is a count of 0, not a failed probe. The HTTP probe insists on TLS and
    verifies the gateway's certificate (against `ca_file` when its CA is private), so a
    certificate that stops being trusted fails the probe and its expiry is measured
    (probe_ssl_earliest_cert_expiry)."""
    modules = {"http_2xx": {"prober": "http", "timeout": "5s",
                            "http": {"valid_status_codes": [200],
                                     "preferred_ip_protocol": "ip4",
                                     "fail_if_not_ssl": True,
                                     **({"tls_config": {"ca_file": ca_file}} if ca_file else {})}}}
    for name, dns in sorted((task_counts or {}).items()):
        modules[module_name(name)] = {
            "prober": "dns", "timeout": "3s",
            "dns": {"query_name": dns, "query_type": "A", "transport_protocol": "udp",
                    "preferred_ip_protocol": "ip4", "valid_rcodes": ["NOERROR", "NXDOMAIN"]}}
    return {"modules": modules}


QUERIES_FILE = "/etc/prometheus/ops/postgres-queries.yaml"  # the postgres exporters' extra queries


def postgres_queries() -> dict:
    """The postgres exporters' extra metrics (`--extend.query-path`): continuous
    archiving as each database sees it (pg_archiving_*): WAL segments waiting to be
    archived and the oldest one's age, pg_wal's size, the archiver's last success and
    failure times and its failure count."""
    ready = "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
    query = ("SELECT "  # noqa: S608 - constant text
             f"(SELECT count(*) {ready})::float AS waiting, "
             f"coalesce((SELECT extract(epoch FROM now() - min(modification)) {ready}), 0)::float "
             "AS waiting_age_seconds, "
             "(SELECT coalesce(sum(size), 0) FROM pg_ls_waldir())::float AS wal_bytes, "
             "failed_count::float AS failed_count, "
             "coalesce(extract(epoch FROM last_failed_time), 0)::float AS last_failed_time, "
             "coalesce(extract(epoch FROM last_archived_time), 0)::float AS last_archived_time "
             "FROM pg_stat_archiver")
    gauge = {"waiting": "WAL segments waiting to be archived",
             "waiting_age_seconds": "age of the oldest segment waiting (0: none)",
             "wal_bytes": "size of pg_wal",
             "last_failed_time": "when archive_command last failed (0: never)",
             "last_archived_time": "when a segment was last archived (0: never)"}
    metrics = [{k: {"usage": "GAUGE", "description": v}} for k, v in gauge.items()]
    metrics.insert(3, {"failed_count": {"usage": "COUNTER", "description": "failed archive attempts"}})
    return {"pg_archiving": {"query": query, "master": True, "metrics": metrics}}
