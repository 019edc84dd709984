"""Integration fixtures: a real Docker engine and a throwaway Compose project.

Every test stack gets its own project name and gateway port, so it never touches a
stack the user runs; teardown removes its containers, networks and volumes, and then
checks that nothing labelled with the project is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# One CA for every project the tests make, in every worker (OPS_TLS_DIR, inherited by
# each `inv`), so a test's HTTPS client trusts every gateway it reaches the way a user
# who imported the CA would: through REQUESTS_CA_BUNDLE (the system's roots plus that
# CA: pip, run by some tasks, reads the variable too), which requests reads for
# verify=True. Removed with the run's shared directory.
TLS_DIR = Path(os.environ.setdefault("OPS_TLS_DIR", str(SHARED / "tls")))
os.environ["REQUESTS_CA_BUNDLE"] = str(TLS_DIR / "bundle.pem")


def pytest_collection_modifyitems(items):
    """Every test under tests/integration is `integration` (deselect: -m "not
    integration"), whether or not its module says so."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sigint_default() -> None:
    """preexec_fn for a child that a test will Ctrl-C: a run started in the background by
    a non-interactive shell inherits SIGINT ignored, and so would the child."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def inv(*args, env=None, timeout=600, input=None) -> subprocess.CompletedProcess:
    """Run the real CLI (`inv ...`) the way a user does."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout, input=input)


@pytest.fixture(scope="session")
def engine():
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"integration tests need a running Docker engine (scripts/test starts one): {exc}")
    from ops.gateway_tls import ensure_ca, write_bundle

    # Before any client reads the bundle; every worker writes the same one (atomically).
    write_bundle(ensure_ca(ROOT, out=sys.stderr), TLS_DIR / "bundle.pem")
    return client


@contextlib.contextmanager
def once_per_run(name: str):
    """Yields True to the first worker of the run to get here (the others wait for it to
    finish, then get False): for what every worker needs and one must do."""
    import fcntl

    with open(SHARED / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = SHARED / f"{name}.done"
        first = not done.exists()
        yield first
        done.touch()


def project_leftovers(client, project: str) -> list[str]:
    label = {"label": f"com.docker.compose.project={project}"}
    left = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    left += [f"network {n.name}" for n in client.networks.list(filters=label)]
    left += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    return left


def purge(client, project: str) -> None:
    label = {"label": f"com.docker.compose.project={project}"}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True, v=True)
    for n in client.networks.list(filters=label):
        n.remove()
    for v in client.volumes.list(filters=label):
        v.remove(force=True)


def job_done(base_url: str, job_id: str, timeout: float = 30.0, verify: str | bool = True):
    """GET /jobs/ID until a worker has recorded the job (200) or `timeout`; the last answer."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{base_url}/jobs/{job_id}", timeout=5, verify=verify)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


SECRET_VARS = ("APP_DB_PASSWORD", "AUTH_DB_PASSWORD", "REDIS_PASSWORD", "BROKER_PASSWORD")
def _image_vars() -> tuple[str, ...]:
    from ops.base_images import LOCAL

    return tuple(dict.fromkeys(i.variable for i in LOCAL))


IMAGE_VARS = _image_vars()


def fresh_passwords() -> dict[str, str]:
    """A random value for every secret the stack needs."""
    return {k: secrets.token_urlsafe(16) for k in SECRET_VARS}


def base_images() -> dict[str, str]:
    """The base-image variables scripts/up wrote into .env (the local stand-ins here)."""
    from ops.config import read_env_file

    dotenv = read_env_file(ROOT / ".env")
    return {k: dotenv[k] for k in IMAGE_VARS if dotenv.get(k)}


@pytest.fixture(scope="session")
def api_from_source(engine):
    """Build the api image from this checkout once per run (Docker's cache keeps it
    quick): a machine that already has ops-example/api:dev from older code would
    otherwise test that. The commit tags `inv build` adds are removed again."""
    with once_per_run("api-build") as first:
        if first:
            _build_api(engine)


def _build_api(engine) -> None:
    before = {t for i in engine.images.list("ops-example/api") for t in i.tags}
    env = {**os.environ, "COMPOSE_PROJECT_NAME": f"opstest-build-{secrets.token_hex(3)}",
           **fresh_passwords()}
    result = inv("build", "--service", "api", env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for ref in [ln.split()[1] for ln in result.stdout.splitlines() if ln.startswith("tagged ")]:
        if ref not in before:
            engine.images.remove(ref)


@pytest.fixture(scope="module")
def stack_env(engine, api_from_source):
    """Environment for a fresh test project (own name, port and random passwords)."""
    project = f"opstest-{secrets.token_hex(4)}"
    env = {**os.environ,
           "COMPOSE_PROJECT_NAME": project,
           "GATEWAY_PORT": str(free_port()),
           **fresh_passwords(),
           "API_REPLICAS": "1"}
    yield env
    inv("down", "--volumes", "--yes", env=env, timeout=300)
    left = project_leftovers(engine, project)
    purge(engine, project)
    assert not left, f"`inv down --volumes` left behind: {left}"


# -- the sandbox (two sshd + dockerd hosts as a Swarm), shared by test_sandbox/test_deploy
# Own sandbox name and project directory: a sandbox the user runs is never touched.
SANDBOX = f"opstest-sbx-{secrets.token_hex(3)}"
SANDBOX_PROJECT: list[Path] = []


def sandbox_inv(*args, project_root=None, extra_env=None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPS_SANDBOX": SANDBOX,
           "OPS_ROOT": str(project_root or SANDBOX_PROJECT[0]), **(extra_env or {})}
    return inv(*args, env=env, **kw)


@pytest.fixture(scope="session")
def sandbox_project(tmp_path_factory):

    root = tmp_path_factory.mktemp("sbx-project")
    shutil.copytree(ROOT / "compose", root / "compose", ignore=shutil.ignore_patterns("wheels"))
    SANDBOX_PROJECT[:] = [root]
    return root


@pytest.fixture(scope="session")
def sandbox(engine, sandbox_project):
    result = sandbox_inv("sandbox.up", timeout=900)
    try:
        assert result.returncode == 0, result.stderr[-2000:]
        yield result
    finally:  # a sandbox.up that failed half-way leaves its hosts too
        down = sandbox_inv("sandbox.down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert not engine.containers.list(all=True, filters={"label": f"ops.sandbox={SANDBOX}"})
    assert not [n for n in engine.networks.list(names=[SANDBOX]) if n.name == SANDBOX]
    assert not (sandbox_project / ".sandbox" / "id_ed25519").exists()
