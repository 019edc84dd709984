"""Shell command lines for Swarm nodes, run over SSH. Every interpolated value is
validated or shlex-quoted here, so remote shells never see raw user input."""

from __future__ import annotations

import re
import shlex

TOKEN = re.compile(r"^SWMTKN-1-[a-z0-9]+-[a-z0-9]+$")


def node_state() -> str:
    return "docker info --format '{{.Swarm.LocalNodeState}}'"


def init(advertise_addr: str) -> str:
    return f"docker swarm init --advertise-addr {shlex.quote(advertise_addr)}"


def worker_token() -> str:
    return "docker swarm join-token -q worker"


def join(token: str, manager_addr: str) -> str:
    if not TOKEN.match(token):
        raise ValueError("malformed swarm join token")
    return f"docker swarm join --token {shlex.quote(token)} {shlex.quote(manager_addr + ':2377')}"


def node_ls() -> str:
    return "docker node ls --format '{{json .}}'"


def has_docker() -> str:
    return "command -v docker >/dev/null && docker info --format '{{.ServerVersion}}'"


def install_docker() -> str:
    """Debian/Ubuntu: the distribution's engine, started and enabled where systemd runs."""
    return ("export DEBIAN_FRONTEND=noninteractive; (apt-get update -q && apt-get install -y -q "
            "docker.io) >/dev/null && (systemctl enable --now docker 2>/dev/null || "
            "(pgrep -x dockerd >/dev/null || (nohup dockerd >/var/log/dockerd.log 2>&1 &)))")
