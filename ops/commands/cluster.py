"""Shell lines that read and operate a deployed Swarm stack (ps, health, logs, exec).
Pure: names are validated by their callers' models and shlex-quoted here."""

from __future__ import annotations

import re
import shlex

from .compose import log_flags

SNAPSHOT_MARK = "@@ops-snapshot"
CONTAINER = re.compile(r"^[0-9a-f]{12,64}$")


def snapshot(app: str) -> str:
    """One round trip to the manager: the stack's services, its tasks (current and
    recent), and every node, as three `docker inspect` JSON arrays between markers."""
    ns = shlex.quote(f"label=com.docker.stack.namespace={app}")
    q = shlex.quote(app)
    return (f"echo {SNAPSHOT_MARK} services; "
            f"docker service ls -q --filter {ns} | xargs -r docker service inspect; "
            f"echo {SNAPSHOT_MARK} tasks; "
            f"docker stack ps -q --no-trunc {q} 2>/dev/null | xargs -r docker inspect --type task "
            "2>/dev/null; "
            f"echo {SNAPSHOT_MARK} nodes; "
            "docker node ls -q | xargs -r docker node inspect; true")


def container_exec(container: str, argv: list[str], interactive: bool = False) -> str:
    if not CONTAINER.match(container):
        raise ValueError(f"invalid container id {container!r}")
    flags = "-it " if interactive else ""
    return f"docker exec {flags}{shlex.quote(container)} " + " ".join(shlex.quote(a) for a in argv)


def disk_free(path: str = "/var/lib/docker") -> str:
    """`size available` in KiB of the filesystem holding Docker's data (POSIX df)."""
    return f"df -P -k {shlex.quote(path)} | awk 'NR==2 {{print $2, $4}}'"


def service_logs(services: list[str], follow: bool = False, tail: str | None = None,
                 since: str | None = None, timestamps: bool = False) -> str:
    """`docker service logs` of each service (the manager gathers every node's), run side
    by side so that --follow streams them all; each line names service, task and node."""
    opts = ["--no-trunc", *log_flags(follow, tail, since, timestamps)]
    flags = " ".join(shlex.quote(o) for o in opts)
    runs = [f"docker service logs {flags} {shlex.quote(s)} 2>&1 &" for s in services]
    return " ".join(runs) + " wait"
