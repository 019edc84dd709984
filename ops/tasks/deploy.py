"""Deploy tasks: deploy (blue-green on Swarm), rollback, deploy.finish/status/history/unlock."""

from __future__ import annotations

import json
import sys

from invoke import Collection, task

from ..environment import SWARM
from ..errors import OpsError
from ..parse import number_option
from .common import ENV_HELP, project_root, target, user_errors

DEFAULTS = {"app": "opsdemo", "replicas": 2, "gateway_port": 8080,
            "state_dir": "/var/lib/ops-toolkit", "converge_timeout": 180}


def _options(c, env: str) -> dict:
    """invoke.yaml `deploy:` overlaid by the environment's own keys (envs.<env>.deploy)."""
    envs = c.config.get("envs") or {}
    opts = {**DEFAULTS, **dict(c.config.get("deploy") or {}),
            **dict((envs.get(env) or {}).get("deploy") or {})}
    opts["replicas"] = number_option(opts["replicas"], "deploy.replicas", 1, 50, integer=True)
    opts["gateway_port"] = number_option(opts["gateway_port"], "deploy.gateway_port", 1, 65535,
                                         integer=True)
    opts["converge_timeout"] = number_option(opts["converge_timeout"], "deploy.converge_timeout",
                                             1, 86400)
    return opts


class _Session:
    """Settings, the manager connection and the Deployment of one `--env`."""

    def __init__(self, c, env: str, task: str):
        from pathlib import Path

        from ..commands import deploy as cmd
        from ..commands.registry import repository
        from ..deploy import flow, stackfile
        from ..remote.hosts import Host, inventory, parse_url

        self.s, where = target(c, env, task, {SWARM}, family="deploy")
        opts = _options(c, env)
        env_config = (c.config.get("envs") or {}).get(env) or {}
        state = Path(str(opts["state_dir"]))
        state = state if state.is_absolute() else self.s.root / state
        try:
            paths = cmd.Paths(str(state), str(opts["app"]))
        except ValueError as exc:
            raise OpsError(str(exc)) from None
        self.local = not where.over_ssh
        if self.local:
            # The local engine, through Invoke's Context: same commands, same code path.
            from ..localrun import context

            self.inv = None
            host = Host("local", "localhost", role="manager")
            conn = context(c.config)
            url = parse_url(env, env_config.get("url") or f"http://127.0.0.1:{opts['gateway_port']}")
        else:
            from ..remote.connect import open_checked

            self.inv = inventory(env, env_config, self.s.root)
            host = self.inv.manager
            conn = open_checked(host, self.inv)
            url = self.inv.url
        v = self.s.variables
        self.api_local = v.get("API_IMAGE") or "ops-example/api"
        self.registry = None
        if self.inv is not None:
            from ..remote.registry import parse_registry

            self.registry = parse_registry(env, self.inv.registry, self.s.root, v)
        try:
            api_image = (repository(self.registry.server, self.api_local) if self.registry
                         else self.api_local)
        except ValueError as exc:
            raise OpsError(f"API_IMAGE: {exc}") from None
        rel = stackfile.Release(
            app=paths.app, api_image=api_image,
            postgres_image=v.get("POSTGRES_IMAGE") or "postgres:15.10-bookworm",
            redis_image=v.get("REDIS_IMAGE") or "redis:7.4-bookworm",
            nginx_image=v.get("NGINX_IMAGE") or "nginx:1.27-bookworm",
            replicas=opts["replicas"], gateway_port=opts["gateway_port"], live_dir=paths.live,
            db_user=v.get("APP_DB_USER") or "app", db_name=v.get("APP_DB_NAME") or "app")
        self.d = flow.Deployment(env=env, target=flow.Target(conn, host), paths=paths, rel=rel,
                                 url=url, converge_timeout=opts["converge_timeout"],
                                 registry_auth=self.registry.login if self.registry else None)

    def close(self):
        if not self.local:
            self.d.target.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def require_swarm_manager(self):
        from ..commands import deploy as cmd

        state = self.d.target.run(cmd.swarm_state(), "docker info").stdout.split()
        if state[:1] != ["active"] or state[1:2] != ["true"]:
            raise OpsError(f"{self.d.target.host.name} is not a Swarm manager (state: "
                           f"{' '.join(state) or 'unknown'}): run `inv swarm.init --env {self.d.env}`")

    def resolve_tag(self, tag: str | None) -> str:
        """--tag, or the current commit's tag (built when its image is missing)."""
        from ..commands import deploy as cmd
        from ..docker_api import missing_images
        from ..stack import Stack

        if tag:
            try:
                cmd.check_tag(tag)
            except ValueError as exc:
                raise OpsError(str(exc)) from None
            if missing_images([self.local_ref(tag)]):
                raise OpsError(f"image {self.local_ref(tag)} not found locally "
                               "(build it with `inv build`, or check --tag)")
            return tag
        stack = Stack(self.s)
        tags = stack.release_tags()
        if not tags:
            raise OpsError("not a git checkout: name the tag with --tag")
        if missing_images([self.local_ref(tags[0])]):
            print(f"building {self.local_ref(tags[0])} ...", file=sys.stderr)
            stack.build_release()
        return tags[0]

    def local_ref(self, tag: str) -> str:
        return f"{self.api_local}:{tag}"

    def deliver(self, tag: str):
        """Images onto the nodes: the api everywhere (through the registry when one is
        configured), the base images on the manager only (over SSH, when it lacks them)."""
        rel = self.d.rel
        infra = [rel.postgres_image, rel.redis_image, rel.nginx_image]
        if self.local:
            from ..docker_api import missing_images

            missing = missing_images([rel.api_ref(tag), *infra])
            if missing:
                raise OpsError(f"images missing on the local engine: {', '.join(missing)}")
            return
        from ..remote.images import deliver

        if self.registry:
            from ..remote.registry import pull_everywhere, push

            push(self.registry, [self.local_ref(tag)], sys.stderr)
            pull_everywhere(self.inv, self.registry, [rel.api_ref(tag)], sys.stderr)
            deliver(self.inv, lambda h: infra if h.role == "manager" else [], sys.stderr)
            return
        deliver(self.inv, lambda h: [rel.api_ref(tag)] + (infra if h.role == "manager" else []),
                sys.stderr)

    def secrets(self) -> dict[str, str]:
        from ..deploy.stackfile import SECRET_VARS

        values = {key: self.s.variables.get(var, "") for key, var in SECRET_VARS.items()}
        missing = [SECRET_VARS[k] for k, v in values.items() if not v]
        if missing:
            raise OpsError(f"missing secret(s) {', '.join(missing)} for --env {self.d.env} "
                           f"(.env or .env.{self.d.env})")
        return values

    def nginx_conf(self) -> str:
        return (project_root() / "compose" / "gateway" / "nginx.conf").read_text(encoding="utf-8")


@task(default=True, help={"tag": "image tag to deploy (default: the current commit, built if "
                                 "missing)", "env": ENV_HELP})
@user_errors
def deploy(c, tag=None, env="local"):
    """Blue-green deploy to Swarm: idle color, health gate, probe, switch nginx, verify."""
    from ..deploy import flow

    with _Session(c, env, "deploy") as session:
        session.require_swarm_manager()
        secret_values = session.secrets()
        tag = session.resolve_tag(tag)
        d = session.d
        rec = flow.deploy(d, tag, secret_values, session.nginx_conf(), lambda: session.deliver(tag))
    timings = " ".join(f"{k}={v}s" for k, v in rec.get("timings", {}).items())
    print(f"{d.app} ({env}): {rec['to_color']}/{tag} is live"
          + (f", {rec['from_color']}/{rec['from_tag']} kept for `inv rollback`"
             if rec.get("from_color") else "")
          + f"; switch {rec['switch_seconds']:.2f}s, total {rec['seconds']:.1f}s ({timings})")


@task(help={"env": ENV_HELP})
@user_errors
def rollback(c, env="local"):
    """Switch the gateway back to the previous color (health-checked first); audit-logged."""
    from ..deploy import flow

    with _Session(c, env, "rollback") as session:
        rec = flow.rollback(session.d)
    print(f"{session.d.app} ({env}): rolled back to {rec['to_color']}/{rec['to_tag']} "
          f"(from {rec['from_color']}/{rec['from_tag']}); switch {rec['switch_seconds']:.2f}s")


@task(help={"env": ENV_HELP})
@user_errors
def finish(c, env="local"):
    """Scale the previous (idle) color to zero: ends the instant-rollback window."""
    from ..deploy import flow

    with _Session(c, env, "deploy.finish") as session:
        result = flow.finish(session.d)
    if result["changed"]:
        print(f"{session.d.app} ({env}): {result['idle']} ({result['tag']}) scaled to 0")
    else:
        print(f"{session.d.app} ({env}): {result['idle']} already scaled down")


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def status(c, json_=False, env="local"):
    """The deploy lock, the live color, each color's tag and replicas, the public URL."""
    from datetime import UTC, datetime

    from ..deploy import flow
    from ..deploy.audit import describe as describe_record
    from ..deploy.lock import describe, stale_reason

    with _Session(c, env, "deploy.status") as session:
        d = session.d
        holder = d.lock().holder()
        info = flow.status(d)
        last = flow.history(d, 1)
    stale = stale_reason(holder, datetime.now(UTC)) if holder else None
    info["lock"] = {k: v for k, v in (holder or {}).items() if k != "token"} or None
    info["stale"] = stale
    info["last"] = last[-1] if last else None
    if json_:
        print(json.dumps(info, indent=2))
        return
    lock = "not locked" if not holder else (
        f"locked by {describe(holder)}" + (f" (STALE: {stale})" if stale else ""))
    print(f"{d.app} ({env}): {lock}")
    print(f"  live:  {info['live'] or 'nothing deployed'}" +
          (f" ({info['live_tag']})" if info["live_tag"] else ""))
    for which, c_info in info["colors"].items():
        if c_info is None:
            print(f"  {which:6} not created")
        else:
            print(f"  {which:6} {c_info['tag']:20} {c_info['running']}/{c_info['replicas']} running"
                  + (f"  update {c_info['update']}" if c_info["update"] else ""))
    print(f"  url:   {info['url'] or '(none configured)'}")
    if info["last"]:
        print(f"  last:  {describe_record(info['last'])}")


@task(help={"lines": "how many records (default 20)", "json": "print JSON lines",
            "env": ENV_HELP})
@user_errors
def history(c, lines=None, json_=False, env="local"):
    """The deploy audit log kept on the manager: who, when, from -> to, outcome."""
    from ..deploy import flow
    from ..deploy.audit import describe, line

    # No int default: Invoke would cast `--lines x` itself and print a traceback.
    lines = number_option(20 if lines is None else lines, "--lines", 1, 10000, integer=True)
    with _Session(c, env, "deploy.history") as session:
        records = flow.history(session.d, lines)
    if not records:
        print(f"no deploys recorded for {session.d.app} ({env})")
    for rec in records:
        print(line(rec) if json_ else describe(rec))


@task(help={"volumes": "also delete the database and redis volumes (data loss)",
            "yes": "do not ask for confirmation", "env": ENV_HELP})
@user_errors
def remove(c, volumes=False, yes=False, env="local"):
    """Remove the deployed stack (both colors, gateway, db, redis) and its secrets."""
    from ..deploy import flow
    from .common import confirm

    with _Session(c, env, "deploy.remove") as session:
        d = session.d
        confirm(f"Remove stack {d.app} from {env}" + (" INCLUDING its data volumes" if volumes
                                                          else "") + "?", yes)
        removed = flow.remove(d, volumes=volumes)
    print(f"{d.app} ({env}): removed " + ", ".join(removed))


@task(help={"env": ENV_HELP})
@user_errors
def unlock(c, env="local"):
    """Remove the deploy lock, whoever holds it (prints who that was)."""
    from ..commands import lock as cmd
    from ..deploy.lock import describe

    with _Session(c, env, "deploy.unlock") as session:
        d = session.d
        holder = d.lock().holder()
        if not holder:
            print(f"{d.app} ({env}): not locked")
            return
        d.target.run(cmd.remove(d.app, d.paths.base), "remove deploy lock")
    print(f"{d.app} ({env}): removed the lock of {describe(holder)}")


ns = Collection("deploy")
ns.add_task(deploy, default=True)
for _t in (finish, status, history, remove, unlock):
    ns.add_task(_t)
