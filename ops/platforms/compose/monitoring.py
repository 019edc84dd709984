"""The monitoring profile on the local Compose stack: render its configuration, start
and stop it, and ask Prometheus and Alertmanager what they see (their HTTP APIs, on
the loopback ports Compose published)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ...commands import compose
from ...errors import OpsError
from ...facts.compose import parse_model
from ...files import write_atomic
from ...monitoring import promconfig, rules
from ...monitoring.api import ApiReader, http_post
from ...monitoring.files import CACHE, GRAFANA, PROFILE, write_ca
from ...monitoring.settings import Monitoring
from ...shell import run


class LocalMonitoring(ApiReader):
    tunnelled = False  # published on loopback
    def __init__(self, stack, m: Monitoring, metrics_dir: Path | None):
        self.stack, self.m = stack, m
        s = stack.settings
        self.grafana = bool(s.variables.get("GRAFANA_IMAGE"))
        profiles = [PROFILE, GRAFANA] if self.grafana else [PROFILE]
        self.base = compose.base(s.project, s.compose_files, profiles=profiles)
        # Per project: a test or bench stack from the same checkout must never rewrite
        # the rules a running Prometheus of another project reads at its next reload.
        self.config_dir = s.root / CACHE / s.project / "prometheus"
        # node_exporter's textfile collector reads the backup job's metrics from here.
        self.metrics_dir = metrics_dir or (s.root / CACHE / s.project / "textfile")

    # -- the model ----------------------------------------------------------------------
    def _model(self):
        return parse_model(run(compose.config_json(self.base), env=self.stack.env,
                               what="docker compose config").stdout)

    def services(self) -> list[str]:
        """The profile's own services: in the profile model, not in the plain one."""
        return sorted(set(self._model().services) - set(self.stack.model.services))

    # -- configuration --------------------------------------------------------------------
    def render(self) -> str:
        """Write prometheus.yml, alerts.yml, blackbox.yml and the postgres exporters'
        queries; return alertmanager.yml's text (it reaches the container as a secret: the
        webhook URL may hold a token)."""
        model = self._model()
        try:
            targets = promconfig.scrape_targets({n: s.labels for n, s in model.services.items()})
        except ValueError as exc:
            raise OpsError(f"compose file: {exc}") from exc
        prom = promconfig.prometheus(self.m, self.stack.settings.env, targets,
                                     dns_names=lambda name: [name], address=lambda name: name,
                                     public_url="https://gateway:8080", node="local")
        self.config_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.config_dir, 0o755)  # noqa: S103 - Prometheus runs as nobody; no secrets here
        jobs = [j["job_name"] for j in prom["scrape_configs"] if "dns_sd_configs" in j]
        alerts = rules.alerts(self.m, jobs, roles=promconfig.roles(targets))
        ca = write_ca(self.config_dir, self.stack.gateway_trust)
        for name, data in (("prometheus.yml", prom), ("alerts.yml", alerts),
                           ("blackbox.yml", promconfig.blackbox(ca_file=ca)),
                           ("postgres-queries.yaml", promconfig.postgres_queries())):
            write_atomic(self.config_dir / name, yaml.safe_dump(data, sort_keys=False), mode=0o644)
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        return yaml.safe_dump(promconfig.alertmanager(self.m), sort_keys=False)

    def _env(self, alertmanager_yml: str = "") -> dict[str, str]:
        import hashlib

        digest = hashlib.sha256(alertmanager_yml.encode()).hexdigest()[:16]
        return {**self.stack.env, "OPS_ALERTMANAGER_CONFIG": alertmanager_yml,
                "OPS_ALERTMANAGER_CONFIG_HASH": digest if alertmanager_yml else "none",
                "OPS_BACKUP_METRICS_DIR": str(self.metrics_dir),
                "OPS_MONITORING_CONFIG_DIR": str(self.config_dir)}

    # -- lifecycle ------------------------------------------------------------------------
    def up(self, timeout: float = 120) -> list[str]:
        if self.grafana and not self.stack.settings.variables.get("GRAFANA_ADMIN_PASSWORD"):
            raise OpsError("GRAFANA_IMAGE is set but GRAFANA_ADMIN_PASSWORD is not: "
                           "add it to .env (or unset GRAFANA_IMAGE)")
        services = self.services()
        env = self._env(self.render())
        run(compose.up(self.base, wait_timeout=int(timeout), services=services), env=env,
            stream=True, what="docker compose up (monitoring)")
        # A running Prometheus keeps its old configuration until told: reload it.
        http_post(self.url("prometheus", 9090) + "/-/reload")
        return services

    def down(self) -> list[str]:
        services = self.services()
        run(compose.stop_rm(self.base, services), env=self._env(), stream=True,
            what="docker compose rm (monitoring)")
        return services

    # -- reading ------------------------------------------------------------------------
    def url(self, service: str, port: int) -> str:
        result = run(compose.port(self.base, service, port), env=self._env(), check=False)
        address = result.stdout.strip().splitlines()[-1:] if result.ok else []
        if not address or ":" not in address[0]:
            raise OpsError(f"monitoring is not running (no {service}): `inv monitoring.up`")
        return "http://" + address[0].replace("0.0.0.0:", "127.0.0.1:")

    def close(self) -> None:
        """Nothing to close: the APIs are published on loopback."""

    def jobs(self) -> set[str]:
        """The scrape jobs of the rendered prometheus.yml."""
        try:
            prom = yaml.safe_load((self.config_dir / "prometheus.yml").read_text())
            return {j["job_name"] for j in prom["scrape_configs"]}
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise OpsError(f"{self.config_dir / 'prometheus.yml'}: unreadable ({exc}); "
                           "run `inv monitoring.up`") from exc
