"""A Swarm environment as a platform: a deployed stack on hosts reached over SSH, or on
this machine's engine in Swarm mode (`local-swarm`). ps, health, logs, exec and scale
act on its tasks where they run; backups, monitoring and rotations through its
manager; deploys are its own. `inv up/down/build/clean` are refused, naming the task
that does the same on a Swarm.

Nothing connects until a method needs it: a refusal, `inv config` and `inv tls.show`
never open SSH."""

from __future__ import annotations

from functools import cached_property

from ..base import ConfigView, Listing, OnStack, Refusing

SSH_HOSTS = "use an environment with SSH hosts (`--env sandbox`, or envs.<name>.hosts)"
SWARM_HINTS = {
    "up": "use `inv deploy --env {env}` (blue-green, health-gated)",
    "down": "use `inv deploy.remove --env {env}`",
    "clean": "use `inv deploy.remove --env {env}`",
    "build": "use `inv build` (images are built here for every environment; "
             "`inv deploy --env {env}` builds the commit it ships)",
    "hosts": SSH_HOSTS,
}


class SwarmPlatform(OnStack, Refusing):
    kind = "swarm"
    instead = SWARM_HINTS

    def __init__(self, settings, environment, config):
        self.settings, self.environment, self.config = settings, environment, config
        self.env = settings.env
        self.description = environment.description
        self._opened = []  # what close() closes: the session and what was made on it

    # -- the session: settings, machines, the manager's connection -------------------------
    @cached_property
    def session(self):
        """The connected session (opened on first use)."""
        from .session import Session

        session = Session(self.settings, self.environment, self.config)
        self._opened.append(session)
        return session

    @cached_property
    def offline(self):
        """Settings, inventory and the rendered stack, without connecting (inv config,
        tls.show, secrets.list)."""
        from .session import Session

        return Session(self.settings, self.environment, self.config, connect=False)

    @cached_property
    def stack(self):
        from .stack import SwarmStack

        stack = SwarmStack(self.session)
        self._opened.append(stack)
        return stack

    def close(self) -> None:
        while self._opened:
            self._opened.pop().close()

    @property
    def stack_name(self) -> str:
        from ...deploy.options import options

        return str(options(self.config, self.env)["app"])

    def gateway_url(self) -> str | None:
        return self.offline.deployment.url

    # -- reads and one-off actions ---------------------------------------------------------
    def ps(self) -> Listing:
        from ...facts.swarm_stack import ps_rows

        snap = self.stack.snapshot()
        rows = ps_rows(snap, snap.live_color)
        table = [("SERVICE", "REPLICAS", "TAG", "NODES")]
        notes = []
        for r in rows:
            desired = "global" if r["desired"] is None else r["desired"]
            table.append((r["service"] + (" (live)" if r["live"] else ""), f"{r['running']}/{desired}",
                          r["tag"], ", ".join(sorted({t["node"] for t in r["tasks"]})) or "-"))
            notes += [f"  ! {r['service']}.{t['slot']} on {t['node']}: {t['state']}"
                      + (f": {t['error']}" if t["error"] else "") for t in r["not_running"]]
        return Listing(rows, table, notes, empty=f"nothing deployed on --env {self.env}")

    def health(self) -> list:
        return self.stack.health()

    def config_view(self) -> ConfigView:
        """Hosts, URL, registry, deploy settings and the rendered stack, unconnected."""
        import json

        from ...deploy import stackfile

        session = self.offline
        d, inv = session.deployment, session.inv
        plan = session.plan(values=False)
        secrets, configs = plan.names()
        t = plan.t
        stack = {"base": stackfile.base(t, secrets, configs),
                 "blue": stackfile.color(t, plan.rel, "blue", "<tag>", secrets, configs),
                 "followers": stackfile.followers(t, plan.rel, "<tag>", secrets, configs),
                 "notes": t.notes}
        hosts = [{"name": h.name, "role": h.role, "user": h.user, "address": h.address,
                  "port": h.port} for h in (inv.hosts if inv else [])]
        registry = session.registry.server if session.registry else None
        head = {"kind": "swarm", "app": d.app, "url": d.url, "registry": registry,
                "hosts": hosts, "deploy": session.opts, "stack": stack}
        lines = [f"env       {self.env} (Swarm{'' if self.environment.over_ssh else ' on this engine'})",
                 f"app       {d.app}", f"url       {d.url or '-'}",
                 f"registry  {registry or '- (images over SSH)'}"]
        lines += [f"host      {h['name']} {h['role']} {h['user']}@{h['address']}:{h['port']}"
                  for h in hosts]
        lines.append("deploy    " + " ".join(f"{k}={v}" for k, v in session.opts.items()))
        files = {k: stack[k] for k in ("base", "blue", "followers") if stack[k]}
        after = ["stack, rendered from the compose files (secret versions masked; green is "
                 "blue's twin):", json.dumps(files, indent=2, sort_keys=True),
                 "translated for Swarm:" if t.notes else "translated for Swarm: nothing to note"]
        after += [f"  - {note}" for note in t.notes]
        return ConfigView(head, lines, after)

    def tls(self):
        from ...errors import OpsError

        material = self.offline.tls(issue=False)
        if material is None:
            raise OpsError(f"no gateway certificate for {self.env} yet: "
                           f"`inv deploy --env {self.env}` issues one")
        return material

    # -- the features' places --------------------------------------------------------------
    def backup_site(self):
        from .backup_site import SwarmSite

        return SwarmSite(self.stack)

    def monitoring(self, m):
        from .monitoring import SwarmMonitoring

        mon = SwarmMonitoring(self.session, m)
        self._opened.append(mon)
        return mon

    def stack_config(self) -> dict:
        return self.offline.compose_config

    def check_ready(self) -> None:
        self.session.require_swarm_manager()

    def rotate(self, rotation, apply) -> dict:
        """`apply(place)` under the deploy lock (a rotation moves users like a deploy),
        its outcome in the deploy audit log."""
        from ...deploy import records
        from . import deployment
        from .rotation import SwarmPlace

        d = self.session.deployment
        with d.lock(f"rotate {rotation.key}"):
            try:
                rec = apply(SwarmPlace(self.stack, rotation))
            except BaseException as exc:
                deployment.write_audit(d, records.record("rotate", d.env, "failed",
                                                         secret=rotation.key, error=str(exc)[:300]))
                raise
            deployment.write_audit(d, records.record("rotate", d.env, "ok", **rec))
        return rec

    def deployer(self, task: str = "deploy"):
        from .deployer import SwarmDeployer

        return SwarmDeployer(self.session, deployed=self._archive, restore_point=self._restore_point)

    def _restore_point(self):
        from ...backup import pitr

        return pitr.point_maker(self.backup_site())

    def maintenance(self, on: bool, message: str | None = None, retry_after: int = 300) -> dict:
        """The gateway's maintenance page on or off (bluegreen.set_maintenance)."""
        from . import bluegreen

        d = self.deployer("maintenance").deployment
        self.session.require_swarm_manager()
        bluegreen.set_maintenance(d, on, message, retry_after)
        return self.maintenance_state()

    def prune_images(self, keep: int) -> dict:
        """Old app images off every node (image_prune.prune), under the deploy lock."""
        import sys

        from . import image_prune

        d = self.deployer("images.prune").deployment
        self.session.require_swarm_manager()
        with d.lock("images.prune"):
            return image_prune.prune(self.session, keep, say=lambda line: print(line, file=sys.stderr))

    def maintenance_state(self) -> dict:
        from ... import maintenance
        from ...commands import deploy as deploy_cmd

        d = self.deployer("maintenance").deployment
        return maintenance.state(d.target.run(deploy_cmd.read_file(d.paths.maintenance),
                                              "read the maintenance file").stdout)

    def migrate(self, allow_breaking: bool = False) -> dict:
        """The pending migrations of the live release, in its image, under the deploy lock
        (a deploy runs them itself, in the new image, before the idle color starts)."""
        from ...errors import OpsError
        from . import deployment

        deployer = self.deployer("migrate")
        d = deployer.deployment
        self.session.require_swarm_manager()
        current = deployment.live(d)
        if not current:
            raise OpsError(f"nothing is deployed on --env {self.env}: `inv deploy --env {self.env}` "
                           "runs the migrations before the first color starts")
        plan = self.session.plan()
        migrate = deployer.migrations(plan, allow_breaking)
        if migrate is None:
            return {"pending": [], "applied": [], "restore_point": None}
        with d.lock(current[1]):
            deployment.create_secrets(d, plan)
            result = migrate(current[1])
        if getattr(deployer, "maintenance_set", False):
            result["maintenance"] = ("on: the live code may not work on the new schema; deploy the "
                                     f"code for it, then `inv maintenance.off --env {self.env}`")
        return result

    def _archive(self) -> None:
        """After a deploy: continuous archiving set up (pitr.prepare)."""
        import sys

        from ...backup import pitr

        pitr.prepare(self.backup_site, sys.stderr)

    def ssh_hosts(self, task: str):
        """The inventory of an environment over SSH; this engine's Swarm has none."""
        from ...runtime.inventory import inventory

        if not self.environment.over_ssh:
            self.refuse(task, "hosts")
        return inventory(self.env, self.environment.config, self.settings.root)

    def init_cluster(self) -> list[dict]:
        """Init and join (idempotent); the nodes."""
        import sys

        from ...remote import swarm
        from ...runtime.fleet import build

        machines = build(self.env, self.environment, self.settings.root)
        try:
            return swarm.ensure(machines, out=sys.stderr)
        finally:
            machines.close()

    def prune_nodes(self) -> list[str]:
        """Remove the stale node entries (Down, their hostname Ready as another node)."""
        import sys

        from ...remote import swarm

        manager = self.session.deployment.target
        return swarm.prune_stale(manager, swarm.nodes(manager), out=sys.stderr)

    def audit_input(self):
        from ...deploy.options import options, stack_input

        return stack_input(self.settings, options(self.config, self.env))

    def plan_entry(self):
        from ...errors import OpsError
        from ...plan import Env
        from ...runtime.inventory import inventory

        if not self.environment.over_ssh:
            return Env(self.env, "swarm-local")
        env = Env(self.env, "swarm-ssh", url=self.environment.config.get("url"))
        try:
            inv = inventory(self.env, dict(self.environment.config), self.settings.root)
            env.url = inv.url or env.url
            env.hosts = [f"{h.name} ({h.role}) {h.user}@{h.address}:{h.port}" for h in inv.hosts]
        except OpsError as exc:
            env.note = "not created" if "not found" in str(exc) else str(exc)
        return env
