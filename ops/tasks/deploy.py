"""Deploy tasks: deploy (blue-green on Swarm), rollback, deploy.finish/status/history/unlock."""

from __future__ import annotations

import json
from contextlib import contextmanager

from invoke import Collection, task

from ..facts.values import number_option
from .common import ENV_HELP, platform, user_errors


@contextmanager
def _deployer(c, env: str, task: str):
    """The deploy session of --env's platform (a kind that does not deploy refuses in
    one line, naming what to use)."""
    with platform(c, env) as p:
        yield p.deployer(task)

@task(default=True, help={"tag": "image tag to deploy (default: the current commit, built if "
                                 "missing)", "json": "print the deploy's record as JSON",
                          "allow_breaking": "run migrations squawk says break the live color "
                                            "or lock a busy table (a contract step)",
                          "env": ENV_HELP})
@user_errors
def deploy(c, tag=None, env="local", json_=False, allow_breaking=False):
    """Blue-green deploy to Swarm: idle color, health gate, probe, switch nginx, verify."""
    if json_:
        from .. import progress

        progress.quiet()
    if tag is not None:
        _check_tag(tag, "--tag")  # before anything connects or builds
    with _deployer(c, env, "deploy") as deployer:
        deployer.allow_breaking = allow_breaking
        rec = deployer.deploy(tag)
    if json_:
        print(json.dumps(rec, indent=2, default=str))
        return
    timings = _timings(rec)
    print(f"{deployer.app} ({env}): {rec['to_color']}/{rec['to_tag']} is live"
          + (f", {rec['from_color']}/{rec['from_tag']} kept for `inv rollback`"
             if rec.get("from_color") else "")
          + f"; switch {rec['switch_seconds']:.2f}s, total {rec['seconds']:.1f}s ({timings})")


def _check_tag(tag: str, option: str) -> None:
    from ..commands.image_refs import check_tag
    from ..errors import USAGE, OpsError

    try:
        check_tag(tag)
    except ValueError as exc:
        raise OpsError(f"{option}: {exc}", code=USAGE) from None


def _timings(rec: dict) -> str:
    return " ".join(f"{k}={v}s" for k, v in rec.get("timings", {}).items())


@task(help={"env": ENV_HELP,
            "to": "back to this tag: any release still kept on the manager (`inv "
                  "deploy.history`), deployed onto the idle color with its worker and "
                  "switched like a deploy (default: the previous color, at once)",
            "wait": "also wait up to this many seconds until the services that follow the "
                    "app's image (the worker) have rolled back (default: they roll back in "
                    "the background after the switch)",
            "json": "print the rollback's record as JSON"})
@user_errors
def rollback(c, env="local", wait=None, to=None, json_=False):
    """Switch the gateway back to the previous color (health-checked first); audit-logged."""
    # No numeric default: Invoke would cast `--wait x` itself and print a traceback.
    wait = number_option(wait, "--wait", 1, 86400) if wait is not None else None
    if to is not None:
        _check_tag(to, "--to")  # before anything connects
    if json_:
        from .. import progress

        progress.quiet()
    with _deployer(c, env, "rollback") as deployer:
        rec = deployer.rollback(wait_followers=wait, to=to)
    if json_:
        print(json.dumps(rec, indent=2, default=str))
        return
    followers = {"background": "; followers rolling back in the background",
                 "done": "; followers rolled back"}.get(rec.get("followers"), "")
    verified = (f", verified at {rec['verified_seconds']:.2f}s" if "verified_seconds" in rec
                else " (the kept release deployed onto the idle color)")
    print(f"{deployer.app} ({env}): rolled back to {rec['to_color']}/{rec['to_tag']} "
          f"(from {rec['from_color']}/{rec['from_tag']}); switch {rec['switch_seconds']:.2f}s"
          f"{verified}{followers}, total {rec['seconds']:.1f}s ({_timings(rec)})")


@task(help={"env": ENV_HELP})
@user_errors
def finish(c, env="local"):
    """Scale the previous (idle) color to zero: ends the instant-rollback window."""
    with _deployer(c, env, "deploy.finish") as deployer:
        result = deployer.finish()
    if result["changed"]:
        print(f"{deployer.app} ({env}): {result['idle']} ({result['tag']}) scaled to 0")
    else:
        print(f"{deployer.app} ({env}): {result['idle']} already scaled down")


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def status(c, json_=False, env="local"):
    """The deploy lock, the live color, each color's tag and replicas, the public URL."""
    from ..deploy.lock import describe
    from ..deploy.records import describe as describe_record

    with _deployer(c, env, "deploy.status") as deployer:
        info = deployer.status()
    if json_:
        print(json.dumps(info, indent=2))
        return
    holder, stale = info["lock"], info["stale"]
    lock = "not locked" if not holder else (
        f"locked by {describe(holder)}" + (f" (STALE: {stale})" if stale else ""))
    print(f"{deployer.app} ({env}): {lock}")
    print(f"  live:  {info['live'] or 'nothing deployed'}" +
          (f" ({info['live_tag']})" if info["live_tag"] else ""))
    for which, c_info in [*info["colors"].items(), *info["followers"].items()]:
        if c_info is None:
            print(f"  {which:6} not created")
        else:
            print(f"  {which:6} {c_info['tag']:20} {c_info['running']}/{c_info['replicas']} running"
                  + (f"  update {c_info['update']}" if c_info["update"] else ""))
    print(f"  url:   {info['url'] or '(none configured)'}")
    serving = info.get("serving")
    if serving and (serving.get("color"), serving.get("tag")) != (info["live"], info["live_tag"]):
        answered = (f"{serving['color'] or '-'}/{serving['tag'] or '-'} (HTTP {serving['status']})"
                    if serving.get("status") else f"nothing ({serving.get('error') or 'no answer'})")
        print(f"  WARNING: the gateway serves {answered}, not the recorded live color: "
              f"`inv deploy.history --env {env}` shows the last switch")
    if info.get("maintenance", {}).get("on"):
        print(f"  MAINTENANCE MODE on since {info['maintenance']['since'] or '?'}: "
              f"every path but /health* answers 503 (`inv maintenance.off --env {env}`)")
    if info["last"]:
        print(f"  last:  {describe_record(info['last'])}")


@task(help={"lines": "how many records (default 20)", "json": "print JSON lines",
            "env": ENV_HELP})
@user_errors
def history(c, lines=None, json_=False, env="local"):
    """The deploy audit log kept on the manager: who, when, from -> to, outcome."""
    from ..deploy.records import describe, line

    # No int default: Invoke would cast `--lines x` itself and print a traceback.
    lines = number_option(20 if lines is None else lines, "--lines", 1, 10000, integer=True)
    with _deployer(c, env, "deploy.history") as deployer:
        found = deployer.history(lines)
    if not found:
        print(f"no deploys recorded for {deployer.app} ({env})")
    for rec in found:
        print(line(rec) if json_ else describe(rec))


@task(help={"volumes": "also delete the database and redis volumes (data loss)",
            "yes": "do not ask for confirmation", "env": ENV_HELP})
@user_errors
def remove(c, volumes=False, yes=False, env="local"):
    """Remove the deployed stack (both colors, gateway, db, redis) and its secrets."""
    from .common import confirm

    with _deployer(c, env, "deploy.remove") as deployer:
        confirm(f"Remove stack {deployer.app} from {env}" + (" INCLUDING its data volumes"
                                                              if volumes else "") + "?", yes)
        removed = deployer.remove(volumes=volumes)
    print(f"{deployer.app} ({env}): removed " + ", ".join(removed))


@task(help={"env": ENV_HELP})
@user_errors
def unlock(c, env="local"):
    """Remove the deploy lock, whoever holds it (prints who that was)."""
    from ..deploy.lock import describe

    with _deployer(c, env, "deploy.unlock") as deployer:
        holder = deployer.unlock()
    if not holder:
        print(f"{deployer.app} ({env}): not locked")
    else:
        print(f"{deployer.app} ({env}): removed the lock of {describe(holder)}")


ns = Collection("deploy")
ns.add_task(deploy, default=True)
for _t in (finish, status, history, remove, unlock):
    ns.add_task(_t)
