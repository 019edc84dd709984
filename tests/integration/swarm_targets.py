"""The two Swarm environments the deploy scenarios run on, behind one interface, so that
each scenario is written once (tests/integration/test_deploy.py says where it runs):

- `LocalSwarm`: this machine's engine as a one-node Swarm (`--env local-swarm`): the
  verbs run here, no SSH;
- `Sandbox`: two sshd + dockerd hosts (`--env sandbox`): every verb over SSH, the
  images delivered over it, the stack spread over two nodes.

A target knows how to run the CLI against its environment, reach its gateway, and run
the docker CLI on its manager's engine (what a test inspects or breaks)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from ops.config import read_env_file

from .conftest import ROOT, inv, sigint_default

TAGS = ("v1", "v2", "v3")
BAD = "v2-bad"  # its readiness looks for redis where nothing listens: its health check fails


def build_images(engine, repo: str) -> None:
    """v1..v3 of the real api (only APP_VERSION differs) and the failing v2-bad."""
    from ops.wheelhouse import ensure

    ensure(ROOT)
    python = read_env_file(ROOT / ".env").get("PYTHON_IMAGE") or "python:3.11-slim-bookworm"
    for tag in TAGS:
        engine.images.build(path=str(ROOT / "compose" / "api"), tag=f"{repo}:{tag}", rm=True,
                            forcerm=True, buildargs={"PYTHON_IMAGE": python, "APP_VERSION": tag})
    engine.images.build(fileobj=io.BytesIO(
        f"FROM {repo}:v1\nENV REDIS_PORT=6390 APP_VERSION={BAD}\n".encode()), tag=f"{repo}:{BAD}",
        rm=True, forcerm=True)


def remove_images(engine, repo: str) -> None:
    """Every tag of the repository (the commits deployed untagged too), and only those:
    the same build under another target's repository is the same image, with both tags."""
    for image in engine.images.list(repo):
        for ref in image.tags:
            if ref.rpartition(":")[0] == repo:
                engine.images.remove(ref, force=True)


class Target:
    name: str  # the --env
    repo: str
    project: Path
    url: str  # the gateway's public URL, no trailing slash
    verify: str | bool = True  # what the gateway's certificate is checked against
    app_setting: str  # the variable that sets this environment's app name
    state_dir: str  # where the manager keeps the deployed stacks' state (deploy.state_dir)
    _first_deploy: subprocess.CompletedProcess | None = None

    # -- the CLI ----------------------------------------------------------------------
    def cli_env(self, extra: dict | None = None) -> dict:
        raise NotImplementedError

    def inv(self, task: str, *args, extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
        """`inv TASK --env NAME ARGS...`, as a user types it."""
        return inv(task, "--env", self.name, *args, env=self.cli_env(extra), **kw)

    def start(self, task: str, *args, extra: dict | None = None, root: Path | None = None):
        """The same, in the background (a test interrupts it or runs another meanwhile)."""
        env = self.cli_env(extra)
        if root is not None:
            env["OPS_ROOT"] = str(root)
        return subprocess.Popen([sys.executable, "-m", "invoke", task, "--env", self.name, *args],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=sigint_default)

    def keep_passwords(self, passwords: dict[str, str]) -> None:
        """The stack's passwords in the project's .env.ENV, where `inv secrets.rotate`
        keeps a new value (one in the process environment could not be rotated)."""
        self.passwords = passwords
        path = self.project / f".env.{self.name}"
        path.write_text("".join(f"{k}={v}\n" for k, v in passwords.items()))
        path.chmod(0o600)

    def deployed(self) -> Target:
        """v1 live (the first deploy also creates the databases, redis and the gateway)."""
        if self._first_deploy is None:
            first = self.inv("deploy", "--tag", "v1", timeout=900)
            assert first.returncode == 0, first.stderr[-3000:]
            assert "blue/v1 is live" in first.stdout
            self._first_deploy = first
        return self

    # -- what it serves and says --------------------------------------------------------
    def get(self, path: str = "/", **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=5, verify=self.verify, **kw)

    def identity(self, path: str = "/") -> tuple[str, str]:
        r = self.get(path)
        assert r.status_code == 200, r.status_code
        return r.headers["X-App-Color"], r.headers["X-App-Version"]

    def status(self) -> dict:
        r = self.inv("deploy.status", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def ps(self) -> dict[str, dict]:
        r = self.inv("ps", "--json")
        assert r.returncode == 0, r.stderr
        return {row["service"]: row for row in json.loads(r.stdout)}

    def health(self) -> tuple[int, dict]:
        r = self.inv("health", "--json", timeout=120)
        assert "Traceback" not in r.stderr, r.stderr
        return r.returncode, json.loads(r.stdout)

    def wait_until_ok(self, service: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code, report = self.health()
            if not [f for f in failing(report) if f[0] == service]:
                return
            assert time.monotonic() < deadline, report
            time.sleep(3)

    @property
    def app(self) -> str:
        return self.status()["app"]

    # -- its engines ----------------------------------------------------------------------
    def hosts(self) -> dict[str, object]:
        """Node hostname -> something with `exec_run(argv)` on that machine's engine."""
        raise NotImplementedError

    def on_manager(self, *argv: str) -> tuple[int, str]:
        """argv on the manager's machine (the docker CLI there): (exit code, output)."""
        raise NotImplementedError

    def service_container(self, service: str) -> str:
        """The running container of a stack service whose tasks run on the manager."""
        code, out = self.on_manager("docker", "ps", "-q", "--filter",
                                    f"label=com.docker.swarm.service.name={self.app}_{service}")
        assert code == 0 and out.strip(), f"no running {service} task on the manager"
        return out.split()[0]

    def psql(self, service: str, sql: str) -> str:
        """SQL in the database task's own container (the databases run on the manager)."""
        user = {"app-db": "app", "auth-db": "auth"}[service]
        cid = self.service_container(service)
        code, out = self.on_manager("docker", "exec", cid, "psql", "-X", "-q", "-A", "-t", "-v",
                                    "ON_ERROR_STOP=1", "-U", user, "-d", user, "-c", sql)
        assert code == 0, out
        return out.strip()

    def replicas(self, name: str) -> int:
        code, out = self.on_manager("docker", "service", "inspect", "--format",
                                    "{{.Spec.Mode.Replicated.Replicas}}", f"{self.app}_{name}")
        assert code == 0, out
        return int(out.strip())

    def backups(self, service: str, db: str, root: Path | None = None) -> list:
        from ops.backup import layout

        return layout.backups_in((root or self.project) / "backups" / self.name / service / db)


def failing(report) -> list[tuple[str, str]]:
    return [(c["service"], c["check"]) for c in report["checks"] if not c["ok"]]


class _Here:
    """This machine's engine, with the `exec_run` of a sandbox host container."""

    name = "this machine"

    def exec_run(self, argv):
        done = subprocess.run(argv, capture_output=True)
        return type("Exec", (), {"exit_code": done.returncode, "output": done.stdout + done.stderr})()


class LocalSwarm(Target):
    name = "local-swarm"

    def __init__(self, env: dict, port: int, repo: str, project: Path, git: list[str]):
        self.env, self.repo, self.project, self.git = env, repo, project, git
        self.url = f"https://127.0.0.1:{port}"
        # Its own CA: the first deploy makes it (no OPS_TLS_DIR), as in a new project.
        self.verify = str(project / ".tls" / "ca.crt")
        self.app_setting = "INVOKE_ENVS_LOCAL-SWARM_DEPLOY_APP"
        self.state_dir = str(project / ".cache" / "deploy")

    def cli_env(self, extra=None) -> dict:
        return {**self.env, **(extra or {})}

    def hosts(self):
        return {"local": _Here()}

    def on_manager(self, *argv):
        done = _Here().exec_run(list(argv))
        return done.exit_code, done.output.decode(errors="replace")


class Sandbox(Target):
    name = "sandbox"
    app_setting = "INVOKE_DEPLOY_APP"
    state_dir = "/var/lib/ops-toolkit"

    def __init__(self, engine, sandbox_name: str, repo: str, project: Path, base_env: dict):
        self.engine, self.sandbox, self.repo, self.project = engine, sandbox_name, repo, project
        self.base_env = base_env
        self.url = json.loads((project / ".sandbox" / "hosts.json").read_text())["url"]

    def cli_env(self, extra=None) -> dict:
        return {**os.environ, "OPS_SANDBOX": self.sandbox, "OPS_ROOT": str(self.project),
                **self.base_env, **(extra or {})}

    def hosts(self):
        return {c.attrs["Config"]["Hostname"]: c
                for c in self.engine.containers.list(filters={"label": f"ops.sandbox={self.sandbox}"})
                if "registry" not in c.name}

    def manager(self):
        return next(c for name, c in self.hosts().items() if name.endswith("manager"))

    def on_manager(self, *argv):
        r = self.manager().exec_run(list(argv))
        return r.exit_code, r.output.decode(errors="replace")
