"""The Swarm platform's deployer (ops.platforms.base.Deployer): blue-green deploys,
rollbacks and the deploy's state, on the session's manager."""

from __future__ import annotations

from datetime import UTC, datetime

from ...errors import OpsError
from . import bluegreen, deployment


def deployment_cmd_other(current) -> str:
    """The color a deploy goes to: the other one than the live, blue first."""
    from ...commands import deploy as deploy_cmd

    return deploy_cmd.other(current[0]) if current else "blue"


class SwarmDeployer:
    def __init__(self, session, deployed=lambda: None, restore_point=lambda: None,
                 allow_breaking: bool = False):
        self.session = session
        self.deployment = session.deployment
        self._deployed = deployed  # run after a deploy has switched (archiving's stanzas)
        self._restore_point = restore_point  # steps.Runner.restore_point
        self.allow_breaking = allow_breaking
        self.maintenance_set = False  # turned on for a breaking migration allowed

    def migrations(self, plan, allow_breaking: bool | None = None):
        """deploy.migrate as a deploy step (`migrate(tag)`), or None when it is off."""
        from ...migrations import steps
        from . import migration

        argv = steps.command(self.session.opts.get("migrate"))
        if not argv:
            return None
        breaking = self.allow_breaking if allow_breaking is None else allow_breaking
        timeout = self.session.opts["migrate_timeout"]
        d = self.deployment

        def maintenance_first(found) -> None:
            # The live color may fail on the new schema: users see the page, not errors,
            # until the new color serves (deploy) or someone says so (inv migrate).
            d.say(f"maintenance mode on: {len(found)} breaking migration statement(s) allowed")
            bluegreen.set_maintenance(d, True, "Back in a few minutes: we are upgrading.",
                                      why="--allow-breaking")
            self.maintenance_set = True

        def migrate(tag: str) -> dict:
            r = migration.runner(d, plan, tag, argv, timeout, self._restore_point)
            return steps.run(r, d.say, allow_breaking=breaking, before_breaking=maintenance_first)

        return migrate

    @property
    def app(self) -> str:
        return self.deployment.app

    def hooks(self, action: str, **fields):
        """The project's .ops/hooks for `action`, told the environment, app, hosts, URL."""
        from ...hooks import Hooks

        inv = self.session.inv
        hosts = [h.name for h in inv.hosts] if inv is not None else ["localhost"]
        d = self.deployment
        return Hooks(self.session.settings.root, {"env": d.env, "app": d.app, "action": action,
                                                  "hosts": hosts, "url": d.url, **fields},
                     say=d.say)

    def deploy(self, tag: str | None) -> dict:
        session = self.session
        session.require_swarm_manager()
        plan = session.plan()
        hooks = self.hooks("deploy")
        if tag is None:  # the current commit, built here when its image is missing
            hooks.run("pre-build")
        tag = session.resolve_tag(tag)
        current = deployment.live(self.deployment)
        hooks.fields.update(tag=tag, previous_color=current[0] if current else None,
                            previous_tag=current[1] if current else None,
                            color=deployment_cmd_other(current))
        hooks.run("pre-deploy")
        self.maintenance_set = False
        try:
            record = bluegreen.deploy(self.deployment, plan, tag, lambda: session.deliver(plan, tag),
                                      migrate=self.migrations(plan),
                                      pre_switch=lambda which: hooks.run("pre-switch", color=which))
        except BaseException:
            if self.maintenance_set:
                self.deployment.say(
                    "maintenance mode stays ON: the schema changed under the live color; "
                    f"`inv maintenance.off --env {self.deployment.env}` once it serves again")
            raise
        if self.maintenance_set:  # the new color serves: users come back to it
            bluegreen.set_maintenance(self.deployment, False, why="deploy switched")
            record["maintenance"] = "on during the migration and the switch"
        self._deployed()
        self._prune_images(record)
        hooks.run("post-deploy", seconds=record.get("seconds"))
        return record

    def _prune_images(self, record: dict) -> None:
        """The newest deploy.keep_releases releases' images stay on the nodes, and the
        live and idle colors'; the rest go (a failure is a warning: the deploy is done).
        Not on this engine's Swarm (local-swarm): its node is where your builds live;
        `inv images.prune` there when you ask."""
        from ...errors import OpsError
        from . import image_prune

        d = self.deployment
        if self.session.inv is None:
            return
        try:
            with d.lock("images.prune"):
                out = image_prune.prune(self.session, self.session.opts["keep_releases"])
        except OpsError as exc:
            d.say(f"warning: old images not pruned: {exc}")
            return
        removed = sum(len(n["removed"]) for n in out["nodes"].values())
        if removed:
            d.say(f"pruned {removed} old image(s) of {out['repository']} "
                  f"(keeping the newest {self.session.opts['keep_releases']} releases')")
        record["images_pruned"] = removed

    def rollback(self, wait_followers: float | None = None, to: str | None = None) -> dict:
        """Back to the previous color, or `to` a kept release; then the post-rollback hook.
        Leaving a release that ran breaking migrations is said, with its restore point
        (after the switch: the read costs a round trip the switch must not wait for)."""
        from ...migrations.steps import rollback_warning

        d = self.deployment
        rec = self._rollback(wait_followers, to)
        if rec.get("from_tag"):
            warning = rollback_warning(deployment.history(d, 200), rec["from_tag"])
            if warning:
                d.say(warning)
        self.hooks("rollback", tag=rec.get("to_tag"), color=rec.get("to_color"),
                   previous_tag=rec.get("from_tag"), previous_color=rec.get("from_color")).run(
            "post-rollback", seconds=rec.get("seconds"))
        return rec

    def _rollback(self, wait_followers: float | None = None, to: str | None = None) -> dict:
        """Back to the previous color; `to`: back to any release still kept on the
        manager (its app image on the nodes, its worker with it), deployed onto the idle
        color and switched like a deploy."""
        d = self.deployment
        if to is None:
            return bluegreen.rollback(d, wait_followers=wait_followers)
        from ...commands import deploy as deploy_cmd
        from ...errors import OpsError

        try:
            deploy_cmd.check_tag(to)
        except ValueError as exc:
            raise OpsError(f"--to: {exc}") from None
        kept = deploy_cmd.release_tags(d.target.run(deploy_cmd.list_releases(d.paths),
                                                    "list the kept releases").stdout)
        if to not in kept:
            raise OpsError(f"no release of {to} is kept on the manager of --env {d.env} "
                           f"(kept, newest first: {', '.join(kept) or 'none'})")
        current = deployment.live(d)
        if current and current[1] == to:
            raise OpsError(f"{to} is already live on --env {d.env} ({current[0]})")
        idle = deployment.status(d)["colors"]
        other = next((c for c, info in idle.items() if info and info["tag"] == to
                      and (not current or c != current[0])), None)
        if other is not None:  # the previous color runs it: the instant rollback
            return bluegreen.rollback(d, wait_followers=wait_followers)
        session = self.session
        session.require_swarm_manager()
        plan = session.plan()
        # An older release onto a schema already migrated past it: nothing to run (its
        # migrations are all applied), and the expand-only rule is what keeps it working.
        rec = bluegreen.deploy(d, plan, to, lambda: session.deliver_kept(plan, to))
        return {**rec, "followers": "done"}

    def finish(self) -> dict:
        return bluegreen.finish(self.deployment)

    def status(self) -> dict:
        """The live color and each color's state, the lock (its holder, STALE and why),
        and the last record of the deploy log."""
        from ...deploy.lock import stale_reason

        holder = self.deployment.lock().holder()
        info = deployment.status(self.deployment)
        last = deployment.history(self.deployment, 1)
        info["lock"] = {k: v for k, v in (holder or {}).items() if k != "token"} or None
        info["stale"] = stale_reason(holder, datetime.now(UTC)) if holder else None
        info["last"] = last[-1] if last else None
        from ... import maintenance
        from ...commands import deploy as deploy_cmd

        info["maintenance"] = maintenance.state(self.deployment.target.run(
            deploy_cmd.read_file(self.deployment.paths.maintenance), "read the maintenance file").stdout)
        info["serving"] = self._serving() if info["live"] else None
        return info

    def _serving(self) -> dict:
        """Who answers a fresh request through the gateway: the truth the upstream file
        should agree with (a switch cut half-way would show here)."""
        try:
            answer = bluegreen.fetch_identity(self.deployment, deployment.gateway_container(self.deployment))
        except OpsError as exc:
            return {"status": 0, "error": str(exc)}
        return {"status": answer.status, "color": answer.color, "tag": answer.version,
                "error": answer.error}

    def history(self, lines: int) -> list[dict]:
        return deployment.history(self.deployment, lines)

    def remove(self, volumes: bool = False) -> list[str]:
        return bluegreen.remove(self.deployment, volumes=volumes)

    def unlock(self) -> dict | None:
        """Remove the deploy lock; who held it (None: nobody)."""
        from ...commands import deploy_lock

        holder = self.deployment.lock().holder()
        if holder:
            d = self.deployment
            d.target.run(deploy_lock.remove(d.app, d.paths.base), "remove deploy lock")
        return holder
