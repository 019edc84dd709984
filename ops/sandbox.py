"""`inv sandbox.up/down`: two "staging hosts" as containers running sshd + dockerd
(Docker-in-Docker), a fresh SSH key per sandbox, a 2-node Swarm, and the `sandbox`
environment pointing at them. Host keys are read through `docker exec` (a channel
that needs no trust on first use) and written to the sandbox's known_hosts."""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

import bcrypt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import base_images, docker_api
from .commands import docker
from .commands.line import cmd
from .errors import OpsError
from .files import write_atomic
from .shell import run

IMAGE = "ops-local/sandbox-host:3"
REGISTRY_IMAGE = "ops-local/registry:2"
REGISTRY_USER = "ops"
LABEL = "ops.sandbox"
ROLES = ("manager", "worker")
STATE = ".sandbox"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


def prefix() -> str:
    """Name of this sandbox (containers, network): OPS_SANDBOX, default ops-sandbox.
    Tests set their own so they never touch a sandbox someone is using."""
    value = os.environ.get("OPS_SANDBOX", "ops-sandbox")
    if not NAME.match(value):
        raise OpsError(f"invalid OPS_SANDBOX {value!r}: lowercase letters, digits and -")
    return value

# Docker-in-Docker without --privileged (the VM lacks CAP_SYS_RESOURCE): see
# shared/ENVIRONMENT.md. Images and state live on a tmpfs, gone with the container.
DIND = {
    "cap_add": ["ALL"], "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
    "tmpfs": {"/var/lib/docker": "rw,size=4g"},
}


# The gateway publishes GATEWAY_PORT in host mode on the manager; the outer engine maps
# it to a loopback port, so the public URL (and all test traffic) stays on 127.0.0.1.
GATEWAY_PORT = 8080


def _ports(role: str) -> dict:
    ports = {"22/tcp": ("127.0.0.1", None)}
    if role == "manager":
        ports[f"{GATEWAY_PORT}/tcp"] = ("127.0.0.1", None)
    return ports


def container_name(role: str) -> str:
    return f"{prefix()}-{role}"


def new_keypair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " ops-sandbox"


def ensure_image(root: Path, mirror: str, out, image: str = IMAGE,
                 context: str = "sandbox-host") -> None:
    if not docker_api.missing_images([image]):
        return
    base_images.ensure_base(mirror, out)
    print(f"building {image} ...", file=out)
    run(docker.build(image, str(root / "compose" / "images" / context),
                     BASE_IMAGE=base_images.BASE), what=f"docker build {image}")


def _wait(fn, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep the last reason for the message
            last = exc
        time.sleep(0.5)
    raise OpsError(f"sandbox: {what} not ready after {timeout:.0f}s" + (f" ({last})" if last else ""))


def up(root: Path, mirror: str = "", out=sys.stderr, registry: bool = False) -> list[dict]:
    """Start (or complete) the sandbox; `registry` adds a registry container, kept by
    later calls until `down`."""
    client = docker_api.client()
    mirror = mirror or "http://deb.debian.org/debian"
    ensure_image(root, mirror, out)
    state = root / STATE
    state.mkdir(mode=0o700, exist_ok=True)
    network = prefix()
    mine = {"label": f"{LABEL}={network}"}
    existing = {c.name: c for c in client.containers.list(all=True, filters=mine)}
    key_file = state / "id_ed25519"
    if not (key_file.exists() and all(container_name(r) in existing for r in ROLES)):
        for c in existing.values():  # a partial sandbox: start clean
            c.remove(force=True, v=True)
        existing = {}
        private, public = new_keypair()
        write_atomic(key_file, private, mode=0o600)
        write_atomic(state / "id_ed25519.pub", public + "\n", mode=0o644)
    public = (state / "id_ed25519.pub").read_text().strip()
    if not [n for n in client.networks.list(names=[network]) if n.name == network]:
        client.networks.create(network, driver="bridge", labels={LABEL: network})
    hosts, known, url = [], [], None
    for role in ROLES:
        name = container_name(role)
        c = existing.get(name)
        if c is None:
            c = client.containers.run(
                IMAGE, name=name, hostname=name, detach=True, network=network,
                environment={"SANDBOX_AUTHORIZED_KEY": public}, labels={LABEL: network},
                ports=_ports(role), **DIND)
        elif c.status != "running":
            c.start()
        host_key = _wait(lambda c=c: _exec(c, "cat /etc/ssh/ssh_host_ed25519_key.pub"),
                         f"{name} host key")
        _wait(lambda c=c: _exec(c, "docker info --format '{{.ServerVersion}}'"), f"{name} dockerd")
        c.reload()
        port = int(c.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
        ip = c.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        hosts.append({"name": role, "address": "127.0.0.1", "port": port, "user": "root",
                      "key": f"{STATE}/id_ed25519", "role": role, "swarm_addr": ip})
        if role == "manager":
            published = c.attrs["NetworkSettings"]["Ports"][f"{GATEWAY_PORT}/tcp"][0]["HostPort"]
            url = f"https://127.0.0.1:{published}"
        key_type, key_b64 = host_key.split()[:2]
        known.append(f"[127.0.0.1]:{port} {key_type} {key_b64}")
    info = {"hosts": hosts, "url": url}
    if registry or container_name("registry") in existing:
        ensure_image(root, mirror, out, REGISTRY_IMAGE, "registry")
        info["registry"] = _registry(client, root, network, existing.get(container_name("registry")))
    write_atomic(state / "known_hosts", "\n".join(known) + "\n", mode=0o600)
    write_atomic(state / "hosts.json", json.dumps(info, indent=2) + "\n", mode=0o600)
    return hosts


def _registry(client, root: Path, network: str, c) -> dict:
    """A registry with a login (htpasswd, random password) on the sandbox network,
    published on a loopback port P, and forwarded to 127.0.0.1:P on each host, so the
    laptop and the nodes use one name for it: `127.0.0.1:P`. Docker talks plain HTTP to
    loopback registries only, which keeps this sandbox-only."""
    state = root / STATE
    password_file = state / "registry.password"
    htpasswd = state / "registry.htpasswd"
    if c is None or not password_file.exists():
        if c is not None:
            c.remove(force=True, v=True)
        password = secrets.token_urlsafe(24)
        write_atomic(password_file, password + "\n", mode=0o600)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
        write_atomic(htpasswd, f"{REGISTRY_USER}:{hashed}\n", mode=0o644)
        c = client.containers.run(
            REGISTRY_IMAGE, name=container_name("registry"), detach=True, network=network,
            labels={LABEL: network}, ports={"5000/tcp": ("127.0.0.1", None)},
            environment={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "sandbox",
                         "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd"},
            volumes={str(htpasswd): {"bind": "/auth/htpasswd", "mode": "ro"}})
    elif c.status != "running":
        c.start()
    c.reload()
    port = int(c.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"])
    forward = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
               f"TCP:{container_name('registry')}:5000"]
    for role in ROLES:
        host = client.containers.get(container_name(role))
        # anchored, so the `sh -c` running pgrep does not match itself
        if not _exec(host, cmd("pgrep", "-f", "^" + " ".join(forward[:2])).or_true()):
            host.exec_run(forward, detach=True)
        _wait(lambda h=host: _exec(h, cmd("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                          f"http://127.0.0.1:{port}/v2/")) == "401",
              f"registry on {host.name}", timeout=30)
    return {"server": f"127.0.0.1:{port}", "user": REGISTRY_USER,
            "password_file": f"{STATE}/registry.password"}


def _exec(container, command: str) -> str:
    code, output = container.exec_run(["sh", "-c", command])
    return output.decode().strip() if code == 0 else ""


def down(root: Path) -> list[str]:
    client = docker_api.client()
    removed = []
    network = prefix()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}={network}"}):
        c.remove(force=True, v=True)
        removed.append(c.name)
    for n in client.networks.list(names=[network]):
        if n.name == network:
            n.remove()
    state = root / STATE
    for name in ("hosts.json", "known_hosts", "id_ed25519", "id_ed25519.pub",
                 "registry.password", "registry.htpasswd"):
        (state / name).unlink(missing_ok=True)
    if state.exists() and not any(state.iterdir()):
        state.rmdir()
    return removed
