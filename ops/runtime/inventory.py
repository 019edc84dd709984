"""The hosts of an environment: `envs.<name>.hosts` in invoke.yaml, or a generated
hosts file (the sandbox). Everything is validated before any connection is made.
An address may be a ~/.ssh/config alias: its HostName, Port and User apply (values
written in invoke.yaml win, as they do for Fabric), so known_hosts, the trust step and
Swarm all name the host that is really reached."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import OpsError
from ..facts.values import bounded_int, load_json

HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
ROLES = {"manager", "worker"}


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key: str | None = None  # private key file; None: ssh-agent / ~/.ssh/config
    role: str = "worker"
    swarm_addr: str | None = None  # address other nodes reach it on (advertise addr)
    hostname: str | None = None  # ~/.ssh/config HostName of an alias address

    @property
    def endpoint(self) -> str:
        """The host the TCP connection really goes to."""
        return self.hostname or self.address

    @property
    def known_hosts_name(self) -> str:
        return known_hosts_name(self.endpoint, self.port)


def known_hosts_name(hostname: str, port: int) -> str:
    """How OpenSSH (and paramiko) write a host in known_hosts."""
    return hostname if int(port) == 22 else f"[{hostname}]:{port}"


def _port(value, what: str) -> int:
    return bounded_int(value, 1, 65535, f"{what}: invalid port {value!r}")


def parse_host(raw: dict, root: Path, ssh_lookup: Callable[[str], dict] | None = None) -> Host:
    """One validated host. `ssh_lookup` says what ~/.ssh/config holds for an address
    (paramiko's lookup: lowercase keys); values written in the entry win over it."""
    if not isinstance(raw, dict):
        raise OpsError(f"host entry must be a mapping, got {raw!r}")
    name, address = str(raw.get("name", "")), str(raw.get("address", ""))
    if not NAME.match(name):
        raise OpsError(f"invalid host name {name!r}: lowercase letters, digits, - and _")
    if not HOSTNAME.match(address):
        raise OpsError(f"host {name}: invalid address {address!r}")
    ssh = ssh_lookup(address) if ssh_lookup else {}
    if raw.get("port") is not None:
        port = _port(raw["port"], f"host {name}")
    else:
        port = _port(ssh.get("port", 22), f"host {name} (~/.ssh/config)")
    user = str(raw["user"]) if raw.get("user") is not None else str(ssh.get("user", "root"))
    if not USER.match(user):
        raise OpsError(f"host {name}: invalid user {user!r}")
    hostname = ssh.get("hostname")
    if hostname is not None and not HOSTNAME.match(str(hostname)):
        raise OpsError(f"host {name}: invalid HostName {hostname!r} in ~/.ssh/config")
    role = str(raw.get("role", "worker"))
    if role not in ROLES:
        raise OpsError(f"host {name}: role must be manager or worker, not {role!r}")
    key = raw.get("key")
    if key:
        key_path = Path(str(key)).expanduser()
        key = str(key_path if key_path.is_absolute() else root / key_path)
    swarm_addr = raw.get("swarm_addr")
    if swarm_addr is not None and not HOSTNAME.match(str(swarm_addr)):
        raise OpsError(f"host {name}: invalid swarm_addr {swarm_addr!r}")
    return Host(name, address, port, user, key, role, swarm_addr,
                hostname if hostname and hostname != address else None)


@dataclass(frozen=True)
class Inventory:
    env: str
    hosts: tuple[Host, ...]
    known_hosts: Path
    url: str | None = None  # the public URL of the gateway (envs.<name>.url)
    registry: object = None  # envs.<name>.registry as written (see remote/registry.py)

    @property
    def manager(self) -> Host:
        return next(h for h in self.hosts if h.role == "manager")

    @property
    def workers(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "worker"]


def ssh_config_lookup() -> Callable[[str], dict]:
    """~/.ssh/config (and /etc/ssh/ssh_config) read the way every Fabric Connection
    reads them."""
    from fabric import Config
    from paramiko.ssh_exception import ConfigParseError

    try:
        return Config().base_ssh_config.lookup
    except ConfigParseError as exc:
        raise OpsError(f"~/.ssh/config: {exc}") from exc


def inventory(env: str, env_config: dict, root: Path,
              ssh_lookup: Callable[[str], dict] | None = None) -> Inventory:
    raw_hosts = env_config.get("hosts")
    url = env_config.get("url")
    registry = env_config.get("registry")
    hosts_file = env_config.get("hosts_file")
    if hosts_file:
        path = root / hosts_file
        if not path.exists():
            hint = " (run `inv sandbox.up`)" if env == "sandbox" else ""
            raise OpsError(f"environment {env!r}: hosts file {path} not found{hint}")
        raw_hosts = load_json(path.read_text(encoding="utf-8"), f"hosts file {path}")
        if isinstance(raw_hosts, dict):  # {"hosts": [...], "url", "registry"} (the sandbox)
            url = url or raw_hosts.get("url")
            registry = registry or raw_hosts.get("registry")
            raw_hosts = raw_hosts.get("hosts")
    if not raw_hosts:
        raise OpsError(f"environment {env!r} has no hosts (envs.{env}.hosts in invoke.yaml)")
    lookup = ssh_lookup or ssh_config_lookup()
    hosts = tuple(parse_host(h, root, lookup) for h in raw_hosts)
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise OpsError(f"environment {env!r}: duplicate host names")
    if sum(h.role == "manager" for h in hosts) != 1:
        raise OpsError(f"environment {env!r}: exactly one host must have role manager")
    known = Path(env_config.get("known_hosts") or "ssh/known_hosts")
    return Inventory(env, hosts, known if known.is_absolute() else root / known,
                     parse_url(env, url), registry)


def parse_url(env: str, url) -> str | None:
    """The public URL: https://host[:port], no path tricks or shell characters (the
    gateway serves HTTPS only: plain HTTP is redirected)."""
    if url in (None, ""):
        return None
    if re.fullmatch(r"http://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?", str(url)):
        raise OpsError(f"environment {env!r}: url {url!r} is plain HTTP; the gateway serves "
                       "HTTPS only: write https://")
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?", str(url)):
        raise OpsError(f"environment {env!r}: invalid url {url!r} (https://host[:port])")
    return str(url).rstrip("/")
