"""Swarm mode a test run put this engine in, left once at the end of the run: by then
every worker's stacks are down, so no container loses its DNS by it (moby/moby#45144)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

_NOTE = "swarm-to-leave.json"


def ask_to_leave(shared: Path, had_gwbridge: bool) -> None:
    """Called by the test that put the engine in Swarm mode."""
    (shared / _NOTE).write_text(json.dumps({"gwbridge": had_gwbridge}), encoding="utf-8")


def leave_if_asked(shared: Path) -> None:
    note = shared / _NOTE
    if not note.is_file():
        return
    import docker

    had_gwbridge = json.loads(note.read_text(encoding="utf-8"))["gwbridge"]
    note.unlink()
    client = docker.from_env()
    users = dns_users(client)
    if users:
        print("warning: the engine stays in Swarm mode: leaving it would break name resolution in "
              f"{', '.join(users)} (moby/moby#45144); run `docker swarm leave --force` once they "
              "are stopped", file=sys.stderr)
        return
    client.swarm.leave(force=True)
    if not had_gwbridge:  # Swarm made it; leaving keeps it
        for net in client.networks.list(names=["docker_gwbridge"]):
            remove_gwbridge(net)


def dns_users(client) -> list[str]:
    """Running containers on user-defined bridge networks: their names resolve through
    the engine's embedded DNS, which `swarm leave` empties (moby/moby#45144)."""
    nets = [n for n in client.networks.list()
            if n.attrs.get("Driver") == "bridge" and n.name not in ("bridge", "docker_gwbridge")]
    return sorted({c.name for n in nets for c in client.containers.list(filters={"network": n.id})})


def remove_gwbridge(net, timeout: float = 30) -> None:
    """Remove the docker_gwbridge Swarm made. After `swarm leave` its last endpoints
    detach asynchronously, so removal is retried; an endpoint the engine never releases
    (moby/moby#37018, cleared only by restarting dockerd) is a warning, not a failure:
    the bridge is harmless and the next `swarm init` reuses it."""
    import docker

    deadline = time.monotonic() + timeout
    while True:
        try:
            net.remove()
            return
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc):
                raise
            if time.monotonic() > deadline:
                print(f"warning: docker_gwbridge left behind: {exc.explanation} (moby/moby#37018)",
                      file=sys.stderr)
                return
        time.sleep(1)
