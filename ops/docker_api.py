"""Docker Engine reads through the docker SDK (fast, no CLI process per call)."""

from __future__ import annotations

import os
import sys
from functools import lru_cache

from .engine_socket import short_reference
from .errors import OpsError


def _import_docker():
    """Import the docker SDK without its optional SSH transport unless DOCKER_HOST needs it.

    The SDK imports paramiko (and cryptography) eagerly for ssh:// hosts, which costs
    ~0.12 s on every task. Blocking the import only for the duration of this import
    leaves paramiko importable for Fabric afterwards.
    """
    if os.environ.get("DOCKER_HOST", "").startswith("ssh://") or "paramiko" in sys.modules:
        import docker
        return docker
    sys.modules["paramiko"] = None  # makes `import paramiko` raise ImportError
    try:
        import docker
    finally:
        del sys.modules["paramiko"]
    return docker


docker = _import_docker()
from docker.errors import DockerException, ImageNotFound, NotFound  # noqa: E402


@lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=30)
        c.ping()
        return c
    except DockerException as exc:
        raise OpsError("Docker engine not reachable: is dockerd running? "
                       "(scripts/up installs and starts it)") from exc


def missing_images(names) -> list[str]:
    missing = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            client().images.get(name)
        except ImageNotFound:
            missing.append(name)
    return missing


def image_users(names) -> dict[str, str]:
    """The user each locally present image runs as (Config.User, "" for root); images
    not pulled are left out, and an engine that is not running gives {}."""
    try:
        api = client().api
        # One listing first: inspecting each name was one request per service (500 of
        # them for a large stack, nearly all for images that are not here).
        present = {ref for image in api.images() for ref in
                   [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]}
    except (OpsError, DockerException):
        return {}
    users = {}
    for name in dict.fromkeys(n for n in names if n and short_reference(n) in present):
        try:
            users[name] = str((api.inspect_image(name).get("Config") or {}).get("User") or "")
        except DockerException:
            continue  # not pulled, or a reference the engine refuses
    return users


def last_health_output(container: str) -> str:
    try:
        attrs = client().api.inspect_container(container)
    except NotFound:
        return ""
    log = ((attrs.get("State") or {}).get("Health") or {}).get("Log") or []
    if not log:
        return ""
    last = log[-1]
    text = " ".join((last.get("Output") or "").split())
    return f"exit {last.get('ExitCode')}: {text[:300]}"


def project_containers(project: str) -> list:
    """Every container of a compose project except one-off `compose run` ones."""
    found = client().containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"})
    return [c for c in found if c.labels.get("com.docker.compose.oneoff") != "True"]
