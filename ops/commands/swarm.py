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
