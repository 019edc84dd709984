"""Fabric connections that verify host keys against the project's known_hosts."""

from __future__ import annotations

import paramiko
from fabric import Config, Connection

from ..errors import OpsError
from .hosts import Host, Inventory


def connection(host: Host, inv: Inventory, timeout: float = 15) -> Connection:
    """A Connection honouring ~/.ssh/config, refusing unknown or changed host keys."""
    connect_kwargs = {"look_for_keys": host.key is None, "allow_agent": host.key is None}
    if host.key:
        connect_kwargs["key_filename"] = [host.key]
    conn = Connection(host.address, user=host.user, port=host.port, connect_timeout=timeout,
                      connect_kwargs=connect_kwargs, config=Config())
    # Fabric's default policy accepts any key (AutoAdd): replace it before connecting.
    conn.client.get_host_keys().clear()
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if inv.known_hosts.exists():
        conn.client.load_host_keys(str(inv.known_hosts))
    return conn


def open_checked(host: Host, inv: Inventory) -> Connection:
    conn = connection(host, inv)
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        raise OpsError(f"{host.name} ({host.known_hosts_name}): host key CHANGED "
                       f"(now {exc.key.get_name()}); refusing to connect. If the host was "
                       f"rebuilt, remove its line from {inv.known_hosts} and run "
                       f"`inv hosts.trust --env {inv.env}`") from exc
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise OpsError(f"{host.name} ({host.known_hosts_name}): unknown host key; "
                           f"check it and run `inv hosts.trust --env {inv.env}`") from exc
        raise OpsError(f"{host.name}: SSH failed: {exc}") from exc
    except OSError as exc:
        raise OpsError(f"{host.name} ({host.endpoint}:{host.port}): cannot connect: {exc}") from exc
    return conn


def run(conn, command: str, host: Host, what: str, warn: bool = False, stdin: str | None = None):
    """Run a command (already quoted by its builder); failures name the host and step.
    `conn` is a Fabric Connection or, for the local engine, an Invoke Context: both
    share `run`. `stdin` feeds secrets to the command without a command line."""
    import io

    result = conn.run(command, hide=True, warn=True,
                      in_stream=io.StringIO(stdin) if stdin is not None else False)
    if result.exited != 0 and not warn:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise OpsError(f"{host.name}: {what} failed (exit {result.exited}): "
                       f"{detail[-1] if detail else 'no output'}")
    return result
