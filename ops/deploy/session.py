"""One deploy session: the settings of a Swarm environment, the manager connection
(Fabric over SSH, or an Invoke Context on this engine) and the Deployment the flow
runs on; also how images reach the nodes and where secrets come from."""

from __future__ import annotations

import sys

from ..errors import OpsError
from ..parse import number_option

DEFAULTS = {"app": "opsdemo", "replicas": 2, "gateway_port": 8080,
            "state_dir": "/var/lib/ops-toolkit", "converge_timeout": 180}


def options(config, env: str) -> dict:
    """invoke.yaml `deploy:` overlaid by the environment's own keys (envs.<env>.deploy)."""
    envs = config.get("envs") or {}
    opts = {**DEFAULTS, **dict(config.get("deploy") or {}),
            **dict((envs.get(env) or {}).get("deploy") or {})}
    opts["replicas"] = number_option(opts["replicas"], "deploy.replicas", 1, 50, integer=True)
    opts["gateway_port"] = number_option(opts["gateway_port"], "deploy.gateway_port", 1, 65535,
                                         integer=True)
    opts["converge_timeout"] = number_option(opts["converge_timeout"], "deploy.converge_timeout",
                                             1, 86400)
    return opts


class Session:
    """Settings, the manager connection and the Deployment of one `--env`."""

    def __init__(self, s, where, config, connect: bool = True):
        """`connect=False`: settings and inventory only (for `inv config`), no SSH."""
        from pathlib import Path

        from ..commands import deploy as cmd
        from ..commands.registry import repository
        from ..deploy import flow, stackfile
        from ..remote.hosts import Host, inventory, parse_url

        self.s = s
        env = s.env
        opts = self.opts = options(config, env)
        env_config = where.config
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
            conn = context(config)
            url = parse_url(env, env_config.get("url") or f"http://127.0.0.1:{opts['gateway_port']}")
        else:
            from ..remote.connect import open_checked

            self.inv = inventory(env, env_config, self.s.root)
            host = self.inv.manager
            conn = open_checked(host, self.inv) if connect else None
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
        if not self.local and self.d.target.conn is not None:
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
        return (self.s.root / "compose" / "gateway" / "nginx.conf").read_text(encoding="utf-8")


