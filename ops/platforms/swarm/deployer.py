"""The Swarm platform's deployer (ops.platforms.base.Deployer): blue-green deploys,
rollbacks and the deploy's state, on the session's manager."""

from __future__ import annotations

from datetime import UTC, datetime

from . import bluegreen, deployment


class SwarmDeployer:
    def __init__(self, session):
        self.session = session
        self.deployment = session.deployment

    @property
    def app(self) -> str:
        return self.deployment.app

    def deploy(self, tag: str | None) -> dict:
        session = self.session
        session.require_swarm_manager()
        plan = session.plan()
        tag = session.resolve_tag(tag)
        return bluegreen.deploy(self.deployment, plan, tag, lambda: session.deliver(plan, tag))

    def rollback(self, wait_followers: float | None = None) -> dict:
        return bluegreen.rollback(self.deployment, wait_followers=wait_followers)

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
        return info

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
