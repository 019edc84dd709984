"""The Swarm platform's deployer (ops.platforms.base.Deployer): blue-green deploys,
rollbacks and the deploy's state, on the session's manager."""

from __future__ import annotations

from datetime import UTC, datetime

from . import bluegreen, deployment


class SwarmDeployer:
    def __init__(self, session):
        self.session = session
        self.d = session.d

    @property
    def app(self) -> str:
        return self.d.app

    def deploy(self, tag: str | None) -> dict:
        session = self.session
        session.require_swarm_manager()
        plan = session.plan()
        tag = session.resolve_tag(tag)
        return bluegreen.deploy(self.d, plan, tag, lambda: session.deliver(plan, tag))

    def rollback(self, wait_followers: bool = False) -> dict:
        return bluegreen.rollback(self.d, wait_followers=wait_followers)

    def finish(self) -> dict:
        return bluegreen.finish(self.d)

    def status(self) -> dict:
        """The live color and each color's state, the lock (its holder, STALE and why),
        and the last record of the deploy log."""
        from ...deploy.lock import stale_reason

        holder = self.d.lock().holder()
        info = deployment.status(self.d)
        last = deployment.history(self.d, 1)
        info["lock"] = {k: v for k, v in (holder or {}).items() if k != "token"} or None
        info["stale"] = stale_reason(holder, datetime.now(UTC)) if holder else None
        info["last"] = last[-1] if last else None
        return info

    def history(self, lines: int) -> list[dict]:
        return deployment.history(self.d, lines)

    def remove(self, volumes: bool = False) -> list[str]:
        return bluegreen.remove(self.d, volumes=volumes)

    def unlock(self) -> dict | None:
        """Remove the deploy lock; who held it (None: nobody)."""
        from ...commands import deploy_lock

        holder = self.d.lock().holder()
        if holder:
            self.d.target.run(deploy_lock.remove(self.d.app, self.d.paths.base), "remove deploy lock")
        return holder
