"""Command lines for Swarm membership and Docker on the hosts (`line.Line`s). Every
value is validated or quoted here, so the nodes' shells never see raw user input."""

from __future__ import annotations

import re

from .line import Line, all_of, cmd, either, seq, subshell

TOKEN = re.compile(r"^SWMTKN-1-[a-z0-9]+-[a-z0-9]+$")


def node_state() -> Line:
    return cmd("docker", "info", "--format", "{{.Swarm.LocalNodeState}}")


def init(advertise_addr: str) -> Line:
    return cmd("docker", "swarm", "init", "--advertise-addr", advertise_addr)


# Seconds between a node's heartbeats to the managers; a node is Down after about three
# missed ones. Docker's default (5 s) takes ~15 s to notice a dead node; 3 s takes ~9 s,
# for one small message per node every 3 s.
HEARTBEAT = 3


def heartbeat_period() -> Line:
    """The Swarm's dispatcher heartbeat as a Go duration, e.g. `5s` (run on a manager)."""
    return cmd("docker", "info", "--format", "{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}")


def set_heartbeat(seconds: int = HEARTBEAT) -> Line:
    return cmd("docker", "swarm", "update", "--dispatcher-heartbeat", f"{int(seconds)}s").quiet()


def node_id() -> Line:
    """This engine's Swarm node id ('' when it is in no Swarm)."""
    return cmd("docker", "info", "--format", "{{.Swarm.NodeID}}")


def leave() -> Line:
    return cmd("docker", "swarm", "leave", "--force")


def node_rm(node_ids: list[str], force: bool = False) -> Line:
    """Remove node entries; `force`: even one not yet seen Down (its machine is known to
    be another node now)."""
    for n in node_ids:
        if not NODE_ID.match(n):
            raise ValueError(f"invalid node id {n!r}")
    return cmd("docker", "node", "rm", *(["--force"] if force else []), *node_ids)


NODE_ID = re.compile(r"^[a-z0-9]{25}$")


def worker_token() -> Line:
    return cmd("docker", "swarm", "join-token", "-q", "worker")


def join(token: str, manager_addr: str) -> Line:
    if not TOKEN.match(token):
        raise ValueError("malformed swarm join token")
    return cmd("docker", "swarm", "join", "--token", token, f"{manager_addr}:2377")


def node_ls() -> Line:
    return cmd("docker", "node", "ls", "--format", "{{json .}}")


def has_docker() -> Line:
    return all_of(cmd("command", "-v", "docker").quiet(),
                  cmd("docker", "info", "--format", "{{.ServerVersion}}"))


def install_docker() -> Line:
    """Debian/Ubuntu: the distribution's engine, started and enabled where systemd runs
    (else dockerd started in the background, unless it runs)."""
    apt = subshell(all_of(cmd("apt-get", "update", "-q"),
                          cmd("apt-get", "install", "-y", "-q", "docker.io"))).quiet()
    start = either(cmd("systemctl", "enable", "--now", "docker").no_errors(),
                   subshell(either(cmd("pgrep", "-x", "dockerd").quiet(), subshell(
                       cmd("nohup", "dockerd").to("/var/log/dockerd.log").merged().background()))))
    return seq(cmd("export", "DEBIAN_FRONTEND=noninteractive"), all_of(apt, subshell(start)))
