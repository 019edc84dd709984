"""Deploy tasks (in progress): deploy.status, deploy.unlock."""

from __future__ import annotations

import json

from invoke import Collection, task

from ..errors import OpsError
from .common import ENV_HELP, settings, user_errors


def _manager(c, env):
    from ..commands.lock import APP
    from ..remote.connect import open_checked
    from ..remote.hosts import inventory

    s = settings(c, env)
    app = str((c.config.get("deploy") or {}).get("app", "opsdemo"))
    if not APP.match(app):
        raise OpsError(f"invalid deploy.app {app!r}")
    inv = inventory(env, (c.config.get("envs") or {}).get(env) or {}, s.root)
    return open_checked(inv.manager, inv), inv.manager, app


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def status(c, json_=False, env="local"):
    """Show the deploy lock (holder, and whether it is stale)."""
    from datetime import UTC, datetime

    from ..deploy.lock import DeployLock, describe, stale_reason

    conn, host, app = _manager(c, env)
    with conn:
        holder = DeployLock(conn, host, app).holder()
    stale = stale_reason(holder, datetime.now(UTC)) if holder else None
    if json_:
        shown = {k: v for k, v in (holder or {}).items() if k != "token"}
        print(json.dumps({"app": app, "env": env, "lock": shown or None, "stale": stale}, indent=2))
        return
    if not holder:
        print(f"{app} ({env}): not locked")
    else:
        print(f"{app} ({env}): locked by {describe(holder)}" + (f" (STALE: {stale})" if stale else ""))


@task(help={"env": ENV_HELP})
@user_errors
def unlock(c, env="local"):
    """Remove the deploy lock, whoever holds it (prints who that was)."""
    from ..commands import lock as cmd
    from ..deploy.lock import DeployLock, describe
    from ..remote.connect import run

    conn, host, app = _manager(c, env)
    with conn:
        holder = DeployLock(conn, host, app).holder()
        if not holder:
            print(f"{app} ({env}): not locked")
            return
        run(conn, cmd.remove(app), host, "remove deploy lock")
    print(f"{app} ({env}): removed the lock of {describe(holder)}")


ns = Collection("deploy", status, unlock)
