"""Delivery through a registry, on a sandbox of its own started with `--registry` (a
real registry with a login): the api is pushed from here and pulled by both nodes, the
stack pins its digest, a second release pushes only what changed, a refused login stops
the deploy before anything changes, and no password is printed or left behind."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from ops.config import read_env_file
from tests.support import loadgen

from .conftest import ROOT, base_images, fresh_passwords, inv

pytestmark = pytest.mark.integration

SANDBOX = f"opstest-reg-{secrets.token_hex(3)}"
REPO = f"ops-test-{secrets.token_hex(3)}/api"
PASSWORDS = fresh_passwords()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg-project")
    shutil.copytree(ROOT / "compose", root / "compose", ignore=shutil.ignore_patterns("wheels"))
    return root


def run(project: Path, *args, extra=None, **kw):
    env = {**os.environ, "OPS_SANDBOX": SANDBOX, "OPS_ROOT": str(project), "API_IMAGE": REPO,
           **base_images(), **PASSWORDS}
    env.pop("REGISTRY_PASSWORD", None)  # the sandbox's password_file, unless a test says
    env.update(extra or {})
    return inv(*args, env=env, **kw)


@pytest.fixture(scope="module")
def sandbox(engine, project):
    up = run(project, "sandbox.up", "--registry", timeout=900)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        yield json.loads((project / ".sandbox" / "hosts.json").read_text())
    finally:  # a sandbox.up that failed half-way leaves its hosts too
        down = run(project, "sandbox.down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert not engine.containers.list(all=True, filters={"label": f"ops.sandbox={SANDBOX}"})
    assert not [n for n in engine.networks.list(names=[SANDBOX]) if n.name == SANDBOX]
    assert not (project / ".sandbox" / "registry.password").exists()


@pytest.fixture(scope="module")
def images(engine):
    """r1 (the real api) and r2 (r1 plus one layer: its version)."""
    from ops.wheelhouse import ensure

    ensure(ROOT)
    python = read_env_file(ROOT / ".env").get("PYTHON_IMAGE") or "python:3.11-slim-bookworm"
    engine.images.build(path=str(ROOT / "compose" / "api"), tag=f"{REPO}:r1", rm=True, forcerm=True,
                        buildargs={"PYTHON_IMAGE": python, "APP_VERSION": "r1"})
    engine.images.build(fileobj=io.BytesIO(f"FROM {REPO}:r1\nENV APP_VERSION=r2\n".encode()),
                        tag=f"{REPO}:r2", rm=True, forcerm=True)
    yield
    for tag in ("r1", "r2"):
        engine.images.remove(f"{REPO}:{tag}", force=True)


def _served(url: str, count: int = 20) -> set[str]:
    with loadgen.Load(url + "/", rate=50, threads=2) as load:
        while len(load.samples) < count:
            time.sleep(0.1)
    result = loadgen.summary(load.samples)
    assert result["failed"] == 0, result
    return set(result["sequence"])


def _status(project) -> dict:
    r = run(project, "deploy.status", "--env", "sandbox", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _service_image(engine, service: str) -> str:
    manager = engine.containers.get(f"{SANDBOX}-manager")
    code, out = manager.exec_run(["docker", "service", "inspect", "--format",
                                  "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service])
    assert code == 0, out
    return out.decode().strip()


def _node_images(engine, role: str) -> str:
    node = engine.containers.get(f"{SANDBOX}-{role}")
    return node.exec_run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]).output.decode()


def _config_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("ops-docker-config-")}


def test_deploys_go_through_the_registry_pinned_by_digest(engine, project, sandbox, images):
    server = sandbox["registry"]["server"]
    password = (project / ".sandbox" / "registry.password").read_text().strip()
    remote = f"{server}/{REPO}"
    config_dirs = _config_dirs()

    first = run(project, "deploy", "--env", "sandbox", "--tag", "r1", timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"pushed {remote}:r1" in first.stderr
    for role in ("manager", "worker"):
        assert f"{role}: pulled {remote}:r1 from {server}" in first.stderr
        assert f"{remote}:r1" in _node_images(engine, role)
    # The base images still travel over SSH: the database image to the worker too (the
    # backup repository runs there, away from the databases), nothing else.
    assert "manager: loaded" in first.stderr
    assert "worker: loaded ops-local/postgres:15-pgbackrest (" in first.stderr, first.stderr
    assert _served(sandbox["url"]) == {"blue/r1"}
    pinned = _service_image(engine, "opsdemo_blue")
    assert pinned.startswith(f"{remote}:r1@sha256:"), pinned

    second = run(project, "deploy", "--env", "sandbox", "--tag", "r2", timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _served(sandbox["url"]) == {"green/r2"}
    assert _service_image(engine, "opsdemo_green").startswith(f"{remote}:r2@sha256:")
    status = _status(project)
    assert (status["live"], status["live_tag"], status["colors"]["blue"]["tag"]) == ("green", "r2", "r1")

    # The registry's name was only a push tag here; the login lived in a throwaway
    # DOCKER_CONFIG, and the password was never printed.
    local = {t for i in engine.images.list(name=f"{server}/*") for t in i.tags}
    assert not [t for t in local if t.startswith(remote)]
    assert _config_dirs() == config_dirs
    for r in (first, second):
        assert password not in r.stdout + r.stderr


def test_refused_login_stops_the_deploy_before_anything_changes(project, sandbox, images):
    before = _status(project)
    r = run(project, "deploy", "--env", "sandbox", "--tag", "r1",
            extra={"REGISTRY_PASSWORD": "not-the-password"}, timeout=300)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: images: docker login ") and "401" in last, r.stderr[-2000:]
    assert "not-the-password" not in r.stdout + r.stderr
    after = _status(project)
    assert (after["live"], after["live_tag"], after["lock"]) == (before["live"], before["live_tag"], None)
    assert after["colors"] == before["colors"]
    assert after["last"]["outcome"] == "failed" and after["last"]["step"] == "images"
    assert _served(sandbox["url"]) == {f"{before['live']}/{before['live_tag']}"}
