"""Shared by the bench scripts: a throwaway stack (own project name and port)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INV = [sys.executable, "-m", "invoke"]
# BENCH_QUICK=1: every size and round count at its smallest, to prove a script still runs
# end to end (its figures mean nothing then). An explicit BENCH_<NAME> still wins.
QUICK = os.environ.get("BENCH_QUICK") == "1"


def knob(name: str, default: float, quick: float) -> float:
    """BENCH_<NAME> if set, else the quick size under BENCH_QUICK=1, else the default."""
    raw = os.environ.get(f"BENCH_{name}")
    if raw is None:
        return quick if QUICK else default
    try:
        return type(default)(raw)
    except ValueError:
        sys.exit(f"bench: BENCH_{name}={raw!r} is not a number")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inv_or_exit(env: dict, *args: str) -> subprocess.CompletedProcess:
    """`inv ARGS` with `env`; a failure ends the benchmark with its last words."""
    r = subprocess.run([*INV, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"inv {' '.join(args)} failed: {r.stderr.strip()[-1500:]}")
    return r


def sandbox_env(sandbox: str, project: Path, repo: str) -> dict:
    """The environment of `inv` against an own sandbox: the base images of .env, fresh
    passwords, the sandbox's name, its project directory and the api's repository."""
    sys.path.insert(0, str(ROOT))
    from ops.config import read_env_file

    dotenv = read_env_file(ROOT / ".env")
    images = {k: v for k, v in dotenv.items() if k.endswith("_IMAGE") and v and k != "API_IMAGE"}
    passwords = {k: secrets.token_urlsafe(16) for k in
                 ("APP_DB_PASSWORD", "AUTH_DB_PASSWORD", "REDIS_PASSWORD", "BROKER_PASSWORD")}
    return {**os.environ, **images, **passwords, "OPS_SANDBOX": sandbox, "OPS_ROOT": str(project),
            "API_IMAGE": repo}


def build_api(repo: str, tags) -> None:
    """The api image from this checkout as `repo:TAG` for each tag (its APP_VERSION)."""
    import docker

    sys.path.insert(0, str(ROOT))
    from ops.config import read_env_file
    from ops.wheelhouse import ensure

    ensure(ROOT, out=sys.stderr)  # a fresh clone has no wheelhouse yet
    client = docker.from_env()
    python = read_env_file(ROOT / ".env").get("PYTHON_IMAGE") or "python:3.11-slim-bookworm"
    for tag in tags:
        client.images.build(path=str(ROOT / "compose" / "api"), tag=f"{repo}:{tag}", rm=True,
                            forcerm=True, buildargs={"PYTHON_IMAGE": python, "APP_VERSION": tag})


def compose_env(env: dict) -> dict[str, str]:
    """The environment `inv` gives Compose for the local stack of `env` (COMPOSE_PROJECT_NAME
    and the rest): .env's variables and the gateway's certificate, which compose.yaml
    reads as environment-sourced secrets. A bare `docker compose` needs the same."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from ops import config
    from ops.platforms.compose.stack import Stack

    cfg = yaml.safe_load((ROOT / "invoke.yaml").read_text()) or {}
    settings = config.load(cfg.get("stack") or {}, cfg.get("envs") or {}, "local", root=ROOT,
                           environ=env)
    return {**env, **Stack(settings).env}


def trust_gateway(root: Path = ROOT) -> str:
    """The gateways' CA of a project (made here if its first `inv up`/deploy has not),
    trusted from here on by requests (REQUESTS_CA_BUNDLE: the system's roots and that
    CA); its path, for curl's --cacert."""
    sys.path.insert(0, str(ROOT))
    from ops.gateway_tls import ensure_ca, write_bundle

    ca = ensure_ca(root, out=sys.stderr)
    os.environ["REQUESTS_CA_BUNDLE"] = str(write_bundle(ca, ca.with_name("bundle.pem")))
    return str(ca)


@contextlib.contextmanager
def bench_stack(**extra):
    """`inv up` a fresh project; yields its environment; removes it (volumes too) after."""
    project = f"opsbench-{secrets.token_hex(3)}"
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "GATEWAY_PORT": str(free_port()),
           **extra}
    try:
        print(f"starting bench stack {project} ...", file=sys.stderr)
        up = subprocess.run([*INV, "up"], cwd=ROOT, env=env, text=True, capture_output=True)
        if up.returncode != 0:  # Compose's progress only when it failed
            sys.exit(f"bench: inv up failed:\n{up.stderr[-2000:]}")
        trust_gateway()
        yield env
    finally:
        subprocess.run([*INV, "down", "--volumes", "--yes"], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class SandboxHosts:
    """The sandbox of this checkout (`inv sandbox.up`): its hosts, and argv that runs a
    command on one of them with plain `ssh`, the tool an operator would use bare."""

    def __init__(self):
        self.state = ROOT / ".sandbox"
        try:
            self.info = json.loads((self.state / "hosts.json").read_text())
        except FileNotFoundError:
            sys.exit("bench: no sandbox here: run `inv sandbox.up` and `inv deploy --env sandbox`")
        self.hosts = {h["name"]: h for h in self.info["hosts"]}
        self.url = self.info["url"]
        trust_gateway()

    def role(self, node: str) -> str:
        return node.rsplit("-", 1)[-1]  # node hostname <sandbox>-<role>

    def ssh(self, node: str, argv: list[str] | str) -> list[str]:
        h = self.hosts[self.role(node)]
        command = argv if isinstance(argv, str) else shlex.join(argv)
        return ["ssh", "-i", str(self.state / "id_ed25519"), "-p", str(h["port"]), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.state / 'known_hosts'}", f"{h['user']}@{h['address']}",
                command]
