"""One deploy session: the settings of a Swarm environment, the manager's runner (over
SSH, or this machine for local-swarm) and the Deployment the flow runs on; also how
images reach the nodes and where secrets come from."""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path

from ...deploy.options import options, stack_input, state_paths
from ...errors import OpsError


class Session:
    """Settings, the manager connection and the Deployment of one `--env`."""

    def __init__(self, s, environment, config, connect: bool = True):
        """`connect=False`: settings and inventory only (for `inv config`), no SSH."""
        from ...runtime import fleet
        from ...runtime.inventory import parse_url
        from .deployment import Deployment

        self.settings = s
        env = s.env
        opts = self.opts = options(config, env)
        env_config = environment.config
        paths = state_paths(s, opts)
        # Local engine or SSH is decided here, once: every verb asks `self.fleet`.
        self.fleet = fleet.build(env, environment, s.root, connect=connect)
        self.inv = self.fleet.inv
        manager = self.fleet.manager_runner if connect else None
        url = self.inv.url if self.inv else \
            parse_url(env, env_config.get("url") or f"https://127.0.0.1:{opts['gateway_port']}")
        self.registry = None
        if self.inv is not None:
            from ...remote.registry import parse_registry

            self.registry = parse_registry(env, self.inv.registry, s.root, s.variables)
        from ... import gateway_tls

        self.deployment = Deployment(env=env, target=manager, paths=paths,
                                     replicas=opts["replicas"], url=url,
                                     trust=gateway_tls.trust(s.root, env, env_config, url),
                                     converge_timeout=opts["converge_timeout"],
                                     registry_auth=self.registry.login if self.registry else None)

    # -- the stack, from the compose files ---------------------------------------------
    @cached_property
    def compose_config(self) -> dict:
        """compose.yaml plus the deploy overlay, as Compose resolves them with this
        environment's variables (`docker compose config`)."""
        from ...commands import compose
        from ...facts.values import load_json
        from ...shell import run

        files, env = stack_input(self.settings, self.opts)
        text = run(compose.config_json(compose.base(self.settings.project, files)), env=env,
                   what="docker compose config (the deployed stack)").stdout
        return load_json(text, "docker compose config")

    @cached_property
    def translation(self):
        """The stack as Compose resolves it, translated for Swarm."""
        from ...deploy.translate import translate

        return translate(self.compose_config, root=str(self.settings.root),
                         on_nodes=(self.deployment.paths.live,))

    @property
    def api_local(self) -> str:
        """The blue-green service's image repository, as built here."""
        from ...deploy.translate import repository

        return repository(self.translation.services[self.translation.blue_green]["image"])

    def release(self):
        from ...commands.registry import repository
        from ...deploy.stackfile import Release

        try:
            image = (repository(self.registry.server, self.api_local) if self.registry
                     else self.api_local)
        except ValueError as exc:
            raise OpsError(f"image of {self.translation.blue_green}: {exc}") from None
        return Release(app=self.deployment.app, app_image=image, replicas=self.opts["replicas"])

    def plan(self, values: bool = True, overrides: dict[str, str] | None = None):
        """The release's inputs; `values=False` (inv config): secrets masked, nothing read.
        `overrides`: variables that win over .env's (a rotation's new value)."""
        from ...deploy.stackfile import Plan

        t = self.translation
        if not values:
            return Plan(t, self.release(), None, None)
        extra = {**self.tls().compose_env(), **self.archive_tls().compose_env(), **(overrides or {})}
        return Plan(t, self.release(), self._values(t.secrets, "secret", extra),
                    self._values(t.configs, "config"))

    def archive_tls(self):
        """pgBackRest's certificates (ops.backup.archive_tls), valid for each database's
        and the repository's name inside the stack (short and stack-prefixed)."""
        from ...backup import archive_tls

        roles = {n: (svc.get("labels") or {}).get("ops.role")
                 for n, svc in self.translation.services.items()}
        return archive_tls.for_stack(self.settings.root, self.deployment.env, roles,
                                     prefix=self.deployment.app)

    def tls_names(self) -> list[str]:
        """What the gateway's certificate must be valid for (a self-signed one): this
        machine, and the gateway's name inside the stack (the blackbox probes')."""
        return ["localhost", "127.0.0.1", "::1", f"{self.deployment.app}_gateway"]

    def tls(self, issue: bool = True):
        """The gateway's certificate for this environment (gateway_tls): issued or renewed
        here when self-signed; the deploy ships it as versioned secrets."""
        from ... import gateway_tls

        s, d = self.settings, self.deployment
        material = gateway_tls.material(s.root, d.env, s.env_config, d.url, self.tls_names(),
                                        out=sys.stderr, issue=issue)
        if material is not None:
            # A first deploy has just made the CA: the switch's verification trusts it.
            self.deployment.trust = material.trust
        return material

    def _values(self, sources, what: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """`extra`: variables the task renders itself (not from .env)."""
        variables = {**self.settings.variables, **(extra or {})}
        values, missing = {}, []
        for key, src in sources.items():
            if src.kind == "environment":
                values[key] = variables.get(src.value, "")
                if not values[key]:
                    missing.append(src.value)
            elif src.kind == "file":
                try:
                    values[key] = Path(src.value).read_text(encoding="utf-8")
                except OSError as exc:
                    raise OpsError(f"{what} {key}: cannot read {src.value}: {exc.strerror}") from None
            elif src.kind == "content":
                values[key] = src.value
        if missing:
            raise OpsError(f"missing {what}(s) {', '.join(missing)} for --env {self.deployment.env} "
                           f"(.env or .env.{self.deployment.env})")
        return values

    def close(self):
        """Every connection the session opened (the manager's among them)."""
        self.fleet.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def require_swarm_manager(self):
        from ...commands import deploy as deploy_cmd
        from ...facts.swarm_stack import not_a_manager

        why = not_a_manager(self.deployment.target.run(deploy_cmd.swarm_state(), "docker info").stdout)
        if why:
            raise OpsError(f"{self.fleet.describe(self.fleet.manager)} is {why}: "
                           f"run `inv swarm.init --env {self.deployment.env}`")

    def resolve_tag(self, tag: str | None) -> str:
        """--tag, or the current commit's tag (built when its image is missing)."""
        from ... import release
        from ...commands import deploy as deploy_cmd
        from ...docker_api import missing_images

        if tag:
            try:
                deploy_cmd.check_tag(tag)
            except ValueError as exc:
                raise OpsError(str(exc)) from None
            if missing_images([self.local_ref(tag)]):
                raise OpsError(f"image {self.local_ref(tag)} not found locally "
                               "(build it with `inv build`, or check --tag)")
            return tag
        tags = release.tags(self.settings.root)
        if not tags:
            raise OpsError("not a git checkout: name the tag with --tag")
        if missing_images([self.local_ref(tags[0])]):
            print(f"building {self.local_ref(tags[0])} ...", file=sys.stderr)
            # Compose interpolates the whole file: the gateway's certificate variables too.
            material = self.tls(issue=False)
            release.build(self.settings, {**self.settings.subprocess_env(),
                                   **(material.compose_env() if material else {})})
        return tags[0]

    def local_ref(self, tag: str) -> str:
        return f"{self.api_local}:{tag}"

    def deliver(self, plan, tag: str):
        """Images onto the nodes: the app's everywhere (through the registry when one is
        configured), the others where they may run: on the manager only when the stack
        pins them there (over SSH, when a node lacks them)."""
        from ...deploy.stackfile import images

        app = plan.rel.app_ref(tag)
        pinned, anywhere = images(plan.t)
        if self.registry:
            from ...remote.registry import pull_everywhere, push

            push(self.registry, [self.local_ref(tag)], sys.stderr)
            pull_everywhere(self.fleet, self.registry, [app], sys.stderr)
            self.deliver_images(pinned, anywhere)
            return
        self.deliver_images(pinned, anywhere, also=[app])

    def deliver_kept(self, plan, tag: str):
        """A kept release's images (`inv rollback --to`): already on the nodes, or in the
        registry; sent from here only to a node that lacks them, and refused in one line
        when this machine does not have them either."""
        from ...deploy.stackfile import images

        app = plan.rel.app_ref(tag)
        pinned, anywhere = images(plan.t)
        try:
            if self.registry:
                from ...remote.registry import pull_everywhere

                pull_everywhere(self.fleet, self.registry, [app], sys.stderr)
                self.deliver_images(pinned, anywhere)
            else:
                self.deliver_images(pinned, anywhere, also=[app])
        except OpsError as exc:
            raise OpsError(f"release {tag}: its images are not on every node, and cannot be "
                           f"sent from here ({exc})") from None

    def deliver_images(self, pinned: list[str], anywhere: list[str], also=(), setup=None):
        """`pinned` to the manager, `anywhere` and `also` to every node, over SSH where a
        node lacks them; `setup(node)` runs on each host's runner first. On
        this machine's engine: refuse what is missing."""
        def wanted(h):
            return [*also, *anywhere, *(pinned if h.role == "manager" else [])]

        self.fleet.deliver_images(wanted, sys.stderr, setup=setup)


