"""Base images: use what is present, pull what a registry serves, and otherwise build
local equivalents from Debian packages (debootstrap base), pointing .env at them."""

from __future__ import annotations

import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import docker_api, envfile
from .commands import docker
from .errors import OpsError
from .shell import run

BASE = "ops-local/debian:bookworm"
SUITE = "bookworm"
MONITORING = "ops-local/prometheus:2.42"


@dataclass(frozen=True)
class LocalImage:
    variable: str  # the .env variable that names the image
    tag: str  # the local stand-in
    context: str  # build context under compose/images/
    # The stack needs what only this build has (the database's pgBackRest): never pulled;
    # a variable naming an upstream image or an older build of it is pointed here. These
    # are the names it replaces; any other image is the user's own and left alone.
    replaces: tuple[str, ...] = ()

    def replaced(self, current: str) -> bool:
        return current != self.tag and (current in self.replaces or
                                         current.startswith(self.tag.split(":")[0] + ":"))


LOCAL = (
    LocalImage("POSTGRES_IMAGE", "ops-local/postgres:15-pgbackrest", "postgres",
               replaces=("", "postgres:15.10-bookworm", "postgres:15")),
    LocalImage("REDIS_IMAGE", "ops-local/redis:7", "redis"),
    LocalImage("RABBITMQ_IMAGE", "ops-local/rabbitmq:3.10", "rabbitmq"),
    LocalImage("NGINX_IMAGE", "ops-local/nginx:1.22", "nginx"),
    LocalImage("PYTHON_IMAGE", "ops-local/python:3.11", "python"),
    # The monitoring profile: one local image serves every one of these variables.
    *(LocalImage(variable, MONITORING, "monitoring") for variable in (
        "PROMETHEUS_IMAGE", "ALERTMANAGER_IMAGE", "NODE_EXPORTER_IMAGE", "POSTGRES_EXPORTER_IMAGE",
        "REDIS_EXPORTER_IMAGE", "NGINX_EXPORTER_IMAGE", "BLACKBOX_EXPORTER_IMAGE")),
)


def debootstrap_argv(target: Path, mirror: str) -> list[str]:
    return ["debootstrap", "--variant=minbase", SUITE, str(target), mirror]


def build_argv(image: LocalImage, root: Path) -> list[str]:
    return docker.build(image.tag, str(root / "compose" / "images" / image.context),
                        BASE_IMAGE=BASE).argv


def ensure_base(mirror: str, out=sys.stderr) -> None:
    if not docker_api.missing_images([BASE]):
        return
    if shutil.which("debootstrap") is None:
        raise OpsError("debootstrap not found: `apt-get install debootstrap` (scripts/up does)")
    print(f"building {BASE} with debootstrap ({mirror}) ...", file=out)
    tmp = Path(tempfile.mkdtemp(prefix="ops-rootfs-", dir="/var/tmp"))
    try:
        run(debootstrap_argv(tmp, mirror), what="debootstrap")
        run(["tar", "-C", str(tmp), "-c", "-f", str(tmp) + ".tar", "."], what="tar rootfs")
        run(docker.import_tarball(str(tmp) + ".tar", BASE), what="docker import")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        Path(str(tmp) + ".tar").unlink(missing_ok=True)


def build_local(root: Path, images=LOCAL, force: bool = False, mirror: str = "",
                out=sys.stderr) -> list[LocalImage]:
    """Build the local stand-ins (in parallel; apt downloads dominate)."""
    # One build per tag: several variables may share a local image.
    todo = list({i.tag: i for i in images if force or docker_api.missing_images([i.tag])}.values())
    if not todo:
        return []
    ensure_base(mirror or "http://deb.debian.org/debian", out)
    print(f"building {', '.join(i.tag for i in todo)} ...", file=out)
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        for f in [pool.submit(run, build_argv(i, root), what=f"docker build {i.tag}") for i in todo]:
            f.result()
    return todo


def try_pull(name: str, timeout: float = 120) -> bool:
    try:
        return run(docker.pull(name), check=False, timeout=timeout).ok
    except OpsError:
        return False


def ensure(root: Path, variables: dict[str, str], offline: bool | None = None,
           out=sys.stderr) -> dict[str, str]:
    """Make every base image available; returns the .env updates it made.

    A variable already naming a present image is left alone. Otherwise the image is pulled;
    if that fails (no registry), the local stand-in is built and the variable pointed at it.
    """
    updates = {}
    need_local = []
    for image in LOCAL:
        current = variables.get(image.variable, "")
        if image.replaces and image.replaced(current):
            need_local.append(image)
            continue
        if current and not docker_api.missing_images([current]):
            continue
        if current and not offline and current != image.tag and try_pull(current):
            print(f"pulled {current}", file=out)
            continue
        need_local.append(image)
    if need_local:
        build_local(root, need_local, mirror=variables.get("DEBIAN_MIRROR", ""), out=out)
        updates = {i.variable: i.tag for i in need_local if variables.get(i.variable) != i.tag}
    if updates:
        envfile.update(root / ".env", updates)
        for k, v in updates.items():
            print(f".env: {k}={v}", file=out)
    return updates
