"""The monitoring profile on a Swarm environment: the same services as locally,
translated like the rest of the stack (compose.yaml plus the deploy overlay) and
deployed into the app's stack namespace as one more stack file. Prometheus finds every
task of every service, both colors included, by DNS (`tasks.<stack>_<service>`).

Nothing is published. Prometheus and Alertmanager run on the manager (their volumes
pin them there); this machine reaches them at their container's docker_gwbridge
address: directly on this machine's engine, through an SSH tunnel (Fabric's
forward_local over the manager's connection) on a remote cluster."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from functools import cached_property

import yaml

from ...commands import deploy as deploy_cmd
from ...commands import deploy_lock as lock_cmd
from ...commands import monitoring as monitoring_cmd
from ...errors import OpsError
from ...files import write_atomic
from ...monitoring import promconfig, rules
from ...monitoring.api import ApiReader, http_get
from ...monitoring.files import CACHE, PROFILE, write_ca
from ...monitoring.settings import Monitoring

STACK_FILE = "monitoring.json"
GATEWAY_PORT = 8080  # the gateway's own port inside the stack (compose.yaml)
ALERTMANAGER_VARIABLE = "OPS_ALERTMANAGER_CONFIG"


class SwarmMonitoring(ApiReader):
    grafana = False  # Grafana runs where its image can be pulled: the Compose profile only

    def __init__(self, session, m: Monitoring | None):
        """`m` None: reading only (no configuration is rendered)."""
        self.session, self.deployment, self.m = session, session.deployment, m
        s = session.settings
        self.config_dir = s.root / CACHE / f"{s.env}-{self.deployment.app}" / "prometheus"
        self._tunnels = ExitStack()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self.tunnelled = session.fleet.tunnels  # the UIs through the manager's SSH connection

    # -- the model ----------------------------------------------------------------------
    @cached_property
    def translation(self):
        """The stack with the monitoring profile, translated for Swarm."""
        from ...commands import compose
        from ...deploy.options import stack_input
        from ...deploy.translate import translate
        from ...facts.values import load_json
        from ...shell import run

        s = self.session.settings
        files, env = stack_input(s, self.session.opts)
        env = {**env, "OPS_MONITORING_CONFIG_DIR": str(self.config_dir),
               "OPS_NODE_TEXTFILE_DIR": self.deployment.paths.textfile}
        text = run(compose.config_json(compose.base(s.project, files, profiles=[PROFILE])),
                   env=env, what="docker compose config (monitoring)").stdout
        return translate(load_json(text, "docker compose config"), root=str(s.root),
                         on_nodes=(self.deployment.paths.live, self.deployment.paths.textfile))

    def services(self) -> list[str]:
        """The profile's own services: in the profile model, not in the deployed one."""
        return sorted(set(self.translation.services) - set(self.session.translation.services))

    def _dns(self, name: str) -> list[str]:
        """The names resolving to every task of a compose service: both colors of the
        blue-green one."""
        from ...commands.deploy import COLORS

        t = self.session.translation
        shorts = COLORS if name == t.blue_green else (name,)
        return [f"tasks.{self.deployment.app}_{short}" for short in shorts]

    def _counted(self) -> dict[str, str]:
        """{service as Swarm names it: DNS name} of every replicated service."""
        from ...commands.deploy import COLORS

        t, app = self.translation, self.deployment.app
        out = {}
        for name, svc in t.services.items():
            if svc["deploy"].get("mode", "replicated") != "replicated":
                continue
            for short in (COLORS if name == t.blue_green else (name,)):
                out[short] = f"tasks.{app}_{short}"
        return out

    def public_url(self) -> str:
        """What blackbox probes: the public URL; the gateway by its stack name when that
        URL is loopback (this machine's engine by default: inside a container, loopback
        is the container itself)."""
        from urllib.parse import urlsplit

        url = self.deployment.url or ""
        if urlsplit(url).hostname in (None, "localhost", "127.0.0.1", "::1"):
            return f"https://{self.deployment.app}_gateway:{GATEWAY_PORT}"
        return url.rstrip("/")

    # -- configuration --------------------------------------------------------------------
    def render(self) -> dict[str, str]:
        """Write prometheus.yml, alerts.yml, blackbox.yml and postgres-queries.yaml (read
        by `docker compose config` as the configs' files); return the variables of the secrets rendered
        here (alertmanager.yml: the webhook URL may hold a token)."""
        t = self.translation
        try:
            targets = promconfig.scrape_targets({n: s.get("labels") or {}
                                                 for n, s in t.services.items()})
        except ValueError as exc:
            raise OpsError(f"compose file: {exc}") from exc
        counted = self._counted()
        app = self.deployment.app
        prom = promconfig.prometheus(self.m, self.session.settings.env, targets, dns_names=self._dns,
                                     address=lambda name: f"{app}_{name}",
                                     public_url=self.public_url(), task_counts=counted)
        jobs = [j["job_name"] for j in prom["scrape_configs"] if "dns_sd_configs" in j]
        alerts = rules.alerts(self.m, jobs, swarm=True, roles=promconfig.roles(targets))
        self.config_dir.mkdir(parents=True, exist_ok=True)
        ca = write_ca(self.config_dir, self.deployment.trust)
        for name, data in (("prometheus.yml", prom), ("alerts.yml", alerts),
                           ("blackbox.yml", promconfig.blackbox(counted, ca_file=ca)),
                           ("postgres-queries.yaml", promconfig.postgres_queries())):
            write_atomic(self.config_dir / name, yaml.safe_dump(data, sort_keys=False), mode=0o644)
        return {ALERTMANAGER_VARIABLE: yaml.safe_dump(promconfig.alertmanager(self.m), sort_keys=False)}

    def plan(self, extra: dict[str, str]):
        from ...deploy.stackfile import Plan
        from ...deploy.translate import Translation

        t, names = self.translation, self.services()
        used = {kind: {r["source"] for n in names for r in t.services[n].get(kind, [])}
                for kind in ("secrets", "configs")}
        session = self.session
        # Only what the monitoring services use: the rest is the deploy's.
        t = Translation(t.services, t.networks, t.volumes,
                        {k: v for k, v in t.secrets.items() if k in used["secrets"]},
                        {k: v for k, v in t.configs.items() if k in used["configs"]}, t.notes)
        return Plan(t, session.release(), session._values(t.secrets, "secret", extra),
                    session._values(t.configs, "config"))

    # -- lifecycle ------------------------------------------------------------------------
    def up(self, timeout: float = 180) -> list[str]:
        from ...deploy import stackfile
        from . import deployment

        d = self.deployment
        self.session.require_swarm_manager()
        deployment.snapshot(d)  # refuses when nothing is deployed yet
        extra = self.render()
        plan = self.plan(extra)
        names = self.services()
        t = plan.t
        # Each node's textfile directory must exist before node-exporter binds it.
        mkdir = monitoring_cmd.make_dir(d.paths.textfile)

        def setup(node):
            node.run(mkdir, "create the textfile directory")

        pinned, anywhere = stackfile.images(t, names)
        self.session.deliver_images(pinned, anywhere, setup=setup)
        d.target.run(lock_cmd.metric_free(d.app, d.paths.base), "deploy lock metric")
        sec, cfg = plan.names()
        files = {STACK_FILE: stackfile.dump(stackfile.part(t, names, sec, cfg)),
                 **plan.config_files()}
        since = deployment.manager_clock(d)
        d.target.put(d.paths.monitoring, files, "upload the monitoring stack")
        deployment.create_secrets(d, plan, keys=set(sec))
        d.target.run(deploy_cmd.stack_deploy(f"{d.paths.monitoring}/{STACK_FILE}", d.app, False),
                     "docker stack deploy (monitoring)")
        for name in names:
            svc = t.services[name]
            if svc["deploy"].get("mode", "replicated") == "replicated":
                deployment.wait_converged(d, name, svc["image"], int(svc["deploy"].get("replicas", 1)),
                                    since, timeout=timeout)
        deployment.record_desired(d)
        deployment.prune_objects(d, {*sec.values(), *cfg.values()})
        return names

    def down(self) -> list[str]:
        """Remove the monitoring services, then the config and secret versions nothing
        uses any more (Alertmanager's holds the webhook URL). Their volumes stay."""
        from . import deployment

        out = self.deployment.target.run(monitoring_cmd.services_rm(self.deployment.app, self.services()),
                                "remove the monitoring services").stdout
        removed = [line.strip()[len(self.deployment.app) + 1:] for line in out.splitlines() if line.strip()]
        if removed:
            deployment.prune_objects(self.deployment, set())
        return removed

    # -- reading ------------------------------------------------------------------------
    def address(self, service: str, port: int) -> str:
        """host:port of a monitoring service's task, as seen from the manager."""
        found = self.deployment.target.run(monitoring_cmd.task_address(self.deployment.app, service),
                                  f"find {service}").stdout.strip()
        if not found:
            raise OpsError(f"monitoring is not running on --env {self.deployment.env} (no {service} task "
                           f"on the manager): `inv monitoring.up --env {self.deployment.env}`")
        return f"{found.split('/')[0]}:{port}"

    def url(self, service: str, port: int, local_port: int | None = None) -> str:
        """A URL this machine can open: the task's address on this engine, else the local
        end of an SSH tunnel through the manager (open until close())."""
        key = f"{service}:{port}"
        with self._lock:  # `inv health` asks from several threads
            if key in self._urls:
                return self._urls[key]
            host, _, remote_port = self.address(service, port).rpartition(":")
            url = self.session.fleet.url(host, int(remote_port), local_port, self._tunnels)
            self._urls[key] = url
            return url

    def close_tunnels(self) -> None:
        self._tunnels.close()
        self._urls.clear()

    def close(self) -> None:
        self.close_tunnels()
        self.session.close()

    def jobs(self) -> set[str]:
        """The scrape jobs of the configuration Prometheus runs (asked, not read from
        this machine: another clone may have started it)."""
        data = http_get(self.url("prometheus", 9090) + "/api/v1/status/config")
        try:
            prom = yaml.safe_load(data["data"]["yaml"])
            return {j["job_name"] for j in prom["scrape_configs"]}
        except (KeyError, TypeError, yaml.YAMLError) as exc:
            raise OpsError(f"prometheus on --env {self.deployment.env}: unreadable configuration") from exc

