"""Delivery through a registry (`envs.<name>.registry`): the api image is pushed from
here and pulled by every node, and the stack pins its digest. The base images (postgres,
redis, nginx), which rarely change, still go over SSH to the manager when it lacks them.

Credentials: `user` in the config, the password from REGISTRY_PASSWORD (.env.<name> or
the environment) or from `password_file`. Here, `docker login` writes into a throwaway
DOCKER_CONFIG (the user's ~/.docker is never touched); on the nodes, into the SSH user's
docker config, which `docker stack deploy --with-registry-auth` forwards to the workers.
Without a password, the existing logins and credential helpers are used as they are."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..commands import docker, image_refs
from ..commands import registry as registry_cmd
from ..errors import OpsError
from ..runtime.fanout import each_host
from ..shell import run as run_local


@dataclass(frozen=True)
class Registry:
    server: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def login(self) -> bool:
        return bool(self.user and self.password)

    def ref(self, local_ref: str) -> str:
        """The registry's name for a local `name:tag`."""
        name, _, tag = local_ref.rpartition(":")
        return f"{registry_cmd.repository(self.server, name)}:{registry_cmd.check_tag(tag)}"


def parse_registry(env: str, raw, root: Path, variables: dict[str, str]) -> Registry | None:
    """`registry: host[:port]` or `{server, user, password_file}`; validated, password
    resolved (REGISTRY_PASSWORD wins over password_file)."""
    if raw in (None, "", {}):
        return None
    if isinstance(raw, str):
        raw = {"server": raw}
    if not isinstance(raw, dict):
        raise OpsError(f"environment {env!r}: registry must be host[:port] or a mapping")
    unknown = set(raw) - {"server", "user", "password_file"}
    if unknown:
        raise OpsError(f"environment {env!r}: unknown registry key(s) {', '.join(sorted(unknown))}")
    try:
        server = registry_cmd.check_server(str(raw.get("server", "")))
        user = registry_cmd.check_user(str(raw["user"])) if raw.get("user") else None
    except ValueError as exc:
        raise OpsError(f"environment {env!r}: {exc}") from None
    password = variables.get("REGISTRY_PASSWORD") or os.environ.get("REGISTRY_PASSWORD")
    if not password and raw.get("password_file"):
        path = Path(str(raw["password_file"])).expanduser()
        path = path if path.is_absolute() else root / path
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise OpsError(f"environment {env!r}: registry password_file: {exc.strerror} "
                           f"({path})") from None
    if password and not user:
        raise OpsError(f"environment {env!r}: a registry password needs registry.user")
    if user and not password:
        raise OpsError(f"environment {env!r}: registry.user {user!r} needs REGISTRY_PASSWORD "
                       f"(.env.{env} or the environment) or registry.password_file")
    return Registry(server, user, password or None)


def push(reg: Registry, local_refs: list[str], out) -> list[str]:
    """Tag each local image with its registry name, push it, drop that extra tag.
    Returns the registry references."""
    config = tempfile.mkdtemp(prefix="ops-docker-config-") if reg.login else None
    env = {**os.environ, "DOCKER_CONFIG": config} if config else None
    pushed = []
    try:
        if reg.login:
            run_local(docker.login(reg.server, reg.user),
                      env=env, input=reg.password, what=f"docker login {reg.server}")
        for local in local_refs:
            remote = reg.ref(local)
            run_local(image_refs.tag(local, remote), what=f"docker tag {local}")
            try:
                run_local(docker.push(remote), env=env,
                          what=f"docker push {remote}")
            finally:
                run_local(docker.image_rm(remote), check=False)
            print(f"pushed {remote}", file=out)
            pushed.append(remote)
    finally:
        if config:
            shutil.rmtree(config, ignore_errors=True)
    return pushed


def pull_on(node, reg: Registry, refs: list[str]) -> None:
    """Log the node (its runner) in, password on stdin, and pull: an unreachable
    registry or a refused login fails here, before anything on the cluster changes."""
    if reg.login:
        node.run(registry_cmd.login(reg.server, reg.user), f"docker login {reg.server}",
                 input=reg.password)
    for ref in refs:
        node.run(registry_cmd.pull(ref), f"docker pull {ref}")


def pull_everywhere(machines, reg: Registry, refs: list[str], out) -> None:
    """Every node pulls at once (each from the registry, not through this machine)."""
    def one(host) -> None:
        pull_on(machines.runner(host), reg, refs)
        print(f"{host.name}: pulled {', '.join(refs)} from {reg.server}", file=out)

    each_host(machines.hosts, one)
