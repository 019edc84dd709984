"""Docker Engine reads through the docker SDK (fast, no CLI process per call)."""

from __future__ import annotations

from functools import lru_cache

import docker
from docker.errors import DockerException, ImageNotFound, NotFound

from .errors import OpsError


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
