"""Host keys: a project known_hosts file, verified on every connection (never trust on
first use silently). `hosts.trust` shows fingerprints before recording them, jump
hosts' first (the hosts behind them are reached through them)."""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import paramiko

from ..errors import OpsError


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    return keys


def remote_key(conn, label: str, timeout: float = 10) -> paramiko.PKey:
    """The key the host of a Fabric Connection presents (no authentication, nothing
    executed), reached the way the Connection would: directly, through its ProxyJump
    host (whose own key must already be trusted) or its ProxyCommand."""
    where = f"{label} ({conn.host}:{conn.port})"
    try:
        sock = conn.open_gateway() if conn.gateway else \
            socket.create_connection((conn.host, int(conn.port)), timeout=timeout)
    except paramiko.SSHException as exc:
        raise OpsError(f"{where}: the jump host refused: {exc}") from exc
    except OSError as exc:
        raise OpsError(f"{where}: cannot connect: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except paramiko.SSHException as exc:
        raise OpsError(f"{where}: SSH handshake failed: {exc}") from exc
    finally:
        transport.close()


def record(path: Path, name: str, key: paramiko.PKey) -> None:
    keys = load(path)
    keys.add(name, key.get_name(), key)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys.save(str(path))
    path.chmod(0o600)


def status(path: Path, name: str, key: paramiko.PKey) -> str:
    """'trusted', 'unknown' or 'CHANGED' for the key a host (known_hosts name) presents."""
    known = load(path).lookup(name)
    if not known:
        return "unknown"
    mine = known.get(key.get_name())
    if mine is None:
        return "unknown" if not known else "CHANGED"
    return "trusted" if mine == key else "CHANGED"
