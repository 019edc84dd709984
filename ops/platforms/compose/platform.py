"""The local Compose stack as a platform: `inv up/down/build/clean` are its own; ps,
health, logs, exec, scale, backups, monitoring and rotations act on its containers.
Deploys, SSH hosts and Swarm membership are refused, naming what to use instead."""

from __future__ import annotations

from functools import cached_property

from ..base import ConfigView, Listing, OnStack, Refusing

COMPOSE_HINTS = {
    "deploy": "use `--env local-swarm` (this engine in Swarm mode, after "
              "`inv swarm.init --env local-swarm`), `--env sandbox`, or a cluster of yours; "
              "`inv up` runs the Compose stack",
    "hosts": "use an environment with SSH hosts (`--env sandbox`, or envs.<name>.hosts)",
    "swarm": "use `--env local-swarm` for this engine, or an environment with hosts",
    "images": "use an environment with SSH hosts (`--env sandbox`, or envs.<name>.hosts)",
    "prune": "use a Swarm environment (`--env local-swarm`, `--env sandbox`, or yours); "
             "the local stack's old images: `inv clean`",
}


class ComposePlatform(OnStack, Refusing):
    kind = "compose"
    description = "the local Compose stack"
    instead = COMPOSE_HINTS

    def __init__(self, settings, environment, config):
        self.settings, self.environment, self.config = settings, environment, config
        self.env = settings.env

    @cached_property
    def stack(self):
        from .stack import Stack

        return Stack(self.settings)

    @property
    def stack_name(self) -> str:
        return self.settings.project

    def throwaway(self, project: str, gateway_port: int) -> ComposePlatform:
        """The same stack as another Compose project (own name, network, volumes and
        gateway port): a disaster-recovery drill stands it up and removes it."""
        import dataclasses

        variables = {**self.settings.variables, "COMPOSE_PROJECT_NAME": project,
                     "GATEWAY_PORT": str(gateway_port)}
        settings = dataclasses.replace(self.settings, project=project, variables=variables)
        return ComposePlatform(settings, self.environment, self.config)

    # -- the stack's lifecycle -------------------------------------------------------------
    def up(self, build: bool = False, timeout: float | None = None) -> float:
        # The app's containers start on a schema its migrations brought up to date: they
        # run first, in its image, once the databases are healthy (`compose run` waits).
        took = self.stack.up(build=build, timeout=timeout,
                             before_start=lambda: self.migrate(gate=False))
        self._archive()
        return took

    def migrate(self, allow_breaking: bool = False, gate: bool = True) -> dict:
        """The app's pending migrations, linted, after a restore point (when every
        database is archived: a first `inv up` has no stanza yet), in its image."""
        import sys

        from ...deploy.options import options
        from ...migrations import steps

        argv = steps.command(options(self.config, self.env).get("migrate"))
        runner = self.stack.migration_runner(argv, self._restore_point) if argv else None
        if runner is None:
            return {"pending": [], "applied": [], "restore_point": None}
        say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        return steps.run(runner, say, allow_breaking=allow_breaking, gate_breaking=gate)

    def maintenance(self, on: bool, message: str | None = None, retry_after: int = 300) -> dict:
        """The gateway's maintenance page on or off: its file in the gateway's live
        directory (bind-mounted), nginx -t, reload. A stopped gateway starts with it."""
        from datetime import UTC, datetime

        from ... import maintenance
        from ...commands import compose
        from ...commands.deploy import NGINX_CONF_IN_GATEWAY
        from ...errors import OpsError
        from ...files import write_atomic
        from ...shell import run

        path = self._maintenance_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_text(encoding="utf-8") if path.exists() else None
        if on:
            write_atomic(path, maintenance.conf(message, retry_after, datetime.now(UTC)), mode=0o644)
        else:
            path.unlink(missing_ok=True)
        stack = self.stack
        running = [c for c in stack.containers() if c.service == "gateway" and c.state == "running"]
        for argv, what in ((["nginx", "-t", "-q", "-c", NGINX_CONF_IN_GATEWAY], "nginx -t"),
                           (["nginx", "-s", "reload", "-c", NGINX_CONF_IN_GATEWAY], "nginx -s reload")):
            if not running:
                break
            r = run(compose.exec_(stack.base, "gateway", argv), env=stack.env, check=False)
            if r.returncode != 0:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    write_atomic(path, before, mode=0o644)
                detail = (r.stderr or r.stdout).strip().splitlines()
                raise OpsError(f"gateway: {what} failed: {detail[-1] if detail else 'no output'}; "
                               "maintenance mode unchanged")
        url = self.gateway_url()
        if running and url:
            from ...routing import wait_maintenance

            wait_maintenance(url, on, stack.gateway_trust)
        state = maintenance.state(path.read_text(encoding="utf-8") if path.exists() else None)
        if not running:
            state["note"] = "the gateway is not running: it starts with this setting"
        return state

    def maintenance_state(self) -> dict:
        from ... import maintenance

        path = self._maintenance_file()
        return maintenance.state(path.read_text(encoding="utf-8") if path.exists() else None)

    def _maintenance_file(self):
        from ... import maintenance

        return self.stack.gateway_state / maintenance.FILE

    def _restore_point(self):
        from ...backup import pitr

        return pitr.point_maker(self.backup_site())

    def _archive(self) -> None:
        import sys

        from ...backup import pitr

        pitr.prepare(self.backup_site, sys.stderr)

    def down(self, volumes: bool = False, ask=None) -> None:
        if volumes and ask is not None:
            ask(f"Delete ALL data volumes of project {self.stack_name!r}?")
        self.stack.down(volumes=volumes)

    def build(self, services=(), no_cache: bool = False) -> list[str]:
        self.stack.build(list(services), no_cache=no_cache)
        return self.stack.build_release() if not services or "api" in services else []

    def clean(self) -> None:
        self.stack.clean()

    def gateway_url(self) -> str | None:
        return self.stack.gateway_url()

    # -- reads and one-off actions ---------------------------------------------------------
    def ps(self) -> Listing:
        containers = self.stack.containers()
        table = [("SERVICE", "CONTAINER", "STATE", "HEALTH")]
        table += [(x.service, x.name, x.state + (f" ({x.exit_code})" if x.state == "exited" else ""),
                   x.health or "-") for x in containers]
        return Listing([vars(x) | {"ok": x.ok} for x in containers], table,
                       empty="no containers (stack is down)")

    def health(self) -> list:
        from ... import health

        stack = self.stack
        return health.run_checks(stack.model, stack.settings.project, stack.gateway_url(),
                                 stack.gateway_trust)

    def config_view(self) -> ConfigView:
        s = self.settings
        return ConfigView(
            {"kind": "compose", "project": s.project, "compose_files": [str(f) for f in s.compose_files]},
            [f"env       {s.env}", f"project   {s.project}",
             "compose   " + ", ".join(str(f.relative_to(s.root)) for f in s.compose_files)])

    def tls(self):
        from ...errors import OpsError

        if self.stack.tls is None:
            raise OpsError(f"no gateway certificate for {self.env} yet: `inv up` issues one")
        return self.stack.tls

    # -- the features' places --------------------------------------------------------------
    def backup_site(self):
        from .backup_site import ComposeSite

        return ComposeSite(self.stack)

    def monitoring(self, m):
        from ...backup.service import backup_config
        from .monitoring import LocalMonitoring

        metrics = backup_config(self.settings, self.config.get("backup", {})).metrics_file
        return LocalMonitoring(self.stack, m, metrics.parent if metrics else None)

    def stack_config(self) -> dict:
        """The stack's model as Compose resolves it, every profile (rotations: the
        exporters read secrets too)."""
        from ...commands import compose
        from ...facts.values import load_json
        from ...shell import run

        text = run(compose.config_json(self.stack.base_all), env=self.stack.env,
                   what="docker compose config").stdout
        return load_json(text, "docker compose config")

    def rotate(self, rotation, apply) -> dict:
        """`apply(place)` under this checkout's rotation lock (Compose has no lock of its own)."""
        from ...rotation import protocol
        from .rotation import ComposePlace

        with protocol.local_lock(self.settings.root):
            return apply(ComposePlace(self.stack, rotation))

    def audit_input(self):
        return None  # the project's own compose files, as they are

    def plan_entry(self):
        from ...plan import Env

        return Env(self.env, "compose")
