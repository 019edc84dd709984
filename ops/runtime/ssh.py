"""Fabric connections that verify host keys against the project's known_hosts."""

from __future__ import annotations

import logging
import re

import paramiko
from fabric import Config, Connection

from ..errors import OpsError
from .inventory import Host, Inventory

# paramiko's transport thread logs a failed handshake with a traceback through Python's
# last-resort handler; open_checked already says it in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def connection(host: Host, inv: Inventory, timeout: float = 15) -> Connection:
    """A Connection honouring ~/.ssh/config, refusing unknown or changed host keys, its
    own and those of any ProxyJump hosts on the way."""
    connect_kwargs = {"look_for_keys": host.key is None, "allow_agent": host.key is None}
    if host.key:
        connect_kwargs["key_filename"] = [host.key]
    conn = Connection(host.address, user=host.user, port=host.port, connect_timeout=timeout,
                      connect_kwargs=connect_kwargs, config=Config())
    for c in path(conn):
        # Fabric's default policy accepts any key (AutoAdd), jump hosts' too: replace it.
        c.client.get_host_keys().clear()
        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if inv.known_hosts.exists():
            c.client.load_host_keys(str(inv.known_hosts))
    return conn


def path(conn: Connection) -> list[Connection]:
    """The ProxyJump hosts Fabric made from ~/.ssh/config, outermost first, then `conn`."""
    chain = [conn]
    while isinstance(chain[-1].gateway, Connection):
        chain.append(chain[-1].gateway)
    return chain[::-1]


def _server(exc: Exception, host: Host) -> str:
    """The host whose key was refused: the target or a jump host on the way."""
    hostname = getattr(exc, "hostname", None)
    if hostname:
        return hostname
    found = re.search(r"Server '([^']+)' not found", str(exc))
    return found.group(1) if found else host.known_hosts_name


def open_checked(host: Host, inv: Inventory) -> Connection:
    conn = connection(host, inv)
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        raise OpsError(f"{host.name} ({_server(exc, host)}): host key CHANGED "
                       f"(now {exc.key.get_name()}); refusing to connect. If the host was "
                       f"rebuilt, remove its line from {inv.known_hosts} and run "
                       f"`inv hosts.trust --env {inv.env}`") from exc
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise OpsError(f"{host.name} ({_server(exc, host)}): unknown host key; "
                           f"check it and run `inv hosts.trust --env {inv.env}`") from exc
        raise OpsError(unreachable(host, inv.env, str(exc) or type(exc).__name__)) from exc
    except OSError as exc:
        raise OpsError(unreachable(host, inv.env, f"cannot connect: {exc}")) from exc
    return conn


def unreachable(host: Host, env: str, why: str) -> str:
    """One line: which host did not answer, and what to do about it. A paused or
    overloaded host accepts the TCP connection and never sends sshd's banner."""
    where = f"{host.name} ({host.user}@{host.endpoint}:{host.port})"
    check = f"check that it is up and that `ssh -p {host.port} {host.user}@{host.endpoint}` answers"
    if env == "sandbox":  # a restarted sandbox host has new ports: sandbox.up rewrites them
        check += " (a restarted sandbox: `inv sandbox.up` heals it)"
    if host.role == "manager":
        return f"{where} is unreachable over SSH ({why}): {check}; nothing in {env} can change until it does"
    return (f"{where} is unreachable over SSH ({why}): {check}; if it stays down, drain it "
            f"(`docker node update --availability drain NODE` on the manager) and take it "
            f"out of the {env} inventory")

