"""Host keys: a project known_hosts file, verified on every connection (never trust on
first use silently). `hosts.trust` shows fingerprints before recording them."""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import paramiko

from ..errors import OpsError
from .hosts import Host


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    return keys


def remote_key(host: Host, timeout: float = 10) -> paramiko.PKey:
    """The key the host presents (no authentication, nothing executed)."""
    try:
        sock = socket.create_connection((host.endpoint, host.port), timeout=timeout)
    except OSError as exc:
        raise OpsError(f"{host.name} ({host.endpoint}:{host.port}): cannot connect: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except paramiko.SSHException as exc:
        raise OpsError(f"{host.name}: SSH handshake failed: {exc}") from exc
    finally:
        transport.close()


def record(path: Path, host: Host, key: paramiko.PKey) -> None:
    keys = load(path)
    keys.add(host.known_hosts_name, key.get_name(), key)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys.save(str(path))
    path.chmod(0o600)


def status(path: Path, host: Host, key: paramiko.PKey) -> str:
    """'trusted', 'unknown' or 'CHANGED' for the key a host presents."""
    known = load(path).lookup(host.known_hosts_name)
    if not known:
        return "unknown"
    mine = known.get(key.get_name())
    if mine is None:
        return "unknown" if not known else "CHANGED"
    return "trusted" if mine == key else "CHANGED"
