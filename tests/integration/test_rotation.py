"""`inv secrets.rotate` on the local Compose stack: a project of its own whose passwords
live in its .env (where a rotated value is kept), real Redis, RabbitMQ and Postgres, and
load through the gateway on the readiness path (which logs in to every server the way
the clients do). The Swarm rotation is in test_deploy.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

import pytest

from ops.config import read_env_file
from tests.support import loadgen

from .conftest import (
    ROOT,
    base_images,
    free_port,
    fresh_passwords,
    inv,
    project_leftovers,
    purge,
)


@pytest.fixture(scope="module")
def project(engine, api_from_source, tmp_path_factory):
    """An own checkout (compose/ and a .env with random passwords), its stack up."""
    import secrets

    root = tmp_path_factory.mktemp("rotation")
    shutil.copytree(ROOT / "compose", root / "compose")
    name = f"opstest-rot-{secrets.token_hex(3)}"
    values = {**base_images(), **fresh_passwords(), "COMPOSE_PROJECT_NAME": name,
              "GATEWAY_PORT": str(free_port())}
    (root / ".env").write_text("# test project\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    (root / ".env").chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in values}
    env["OPS_ROOT"] = str(root)
    up = inv("up", env=env, timeout=900)
    assert up.returncode == 0, up.stderr[-3000:]
    yield root, env, name, values
    inv("down", "--volumes", "--yes", env=env, timeout=300)
    left = project_leftovers(engine, name)
    purge(engine, name)
    assert not left, f"`inv down --volumes` left behind: {left}"


def _exec(container: str, script: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", "-i", container, "sh", "-c", script], input=stdin,
                          capture_output=True, text=True, timeout=60)


def _redis_login(name: str, password: str) -> bool:
    r = _exec(f"{name}-redis-1", "read -r p; REDISCLI_AUTH=$p redis-cli ping", password + "\n")
    return r.stdout.strip() == "PONG"


def _broker_login(name: str, password: str) -> bool:
    r = _exec(f"{name}-rabbitmq-1", "rabbitmqctl -q authenticate_user app", password + "\n")
    return r.returncode == 0


def test_passwords_rotate_under_load_with_no_failed_request(project, engine):
    root, env, name, values = project
    url = f"https://127.0.0.1:{values['GATEWAY_PORT']}/health/ready"
    servers = {s: engine.containers.get(f"{name}-{s}-1").id for s in ("redis", "rabbitmq")}
    with loadgen.Load(url, rate=40, threads=4) as load:
        time.sleep(1)
        results = {key: inv("secrets.rotate", key, env=env, timeout=600)
                   for key in ("redis_password", "broker_password")}
        time.sleep(1)
    for key, r in results.items():
        assert r.returncode == 0, f"{key}:\n{r.stderr[-2000:]}"
        assert "the old one no longer logs in" in r.stdout
    summary = loadgen.summary(load.samples)
    assert summary["requests"] > 200 and summary["failed"] == 0, summary

    after = read_env_file(root / ".env")
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    assert (root / ".env").read_text().startswith("# test project\n")  # the rest kept as it was
    for var, login in (("REDIS_PASSWORD", _redis_login), ("BROKER_PASSWORD", _broker_login)):
        assert after[var] != values[var]
        assert login(name, after[var]) and not login(name, values[var]), var
    assert after["APP_DB_PASSWORD"] == values["APP_DB_PASSWORD"]  # only what was asked
    # The servers were changed in place, not restarted; the clients were replaced.
    assert {s: engine.containers.get(f"{name}-{s}-1").id for s in servers} == servers
    # A restart of redis reads its ACL file (the rotated password), not its old secret copy.
    engine.containers.get(f"{name}-redis-1").restart()
    deadline = time.monotonic() + 30
    while not _redis_login(name, after["REDIS_PASSWORD"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _redis_login(name, after["REDIS_PASSWORD"]) and not _redis_login(name, values["REDIS_PASSWORD"])
    health = inv("health", "--wait", "60", env=env, timeout=120)
    assert health.returncode == 0, health.stdout
    assert not list((root / ".cache" / "rotation").glob("*.json"))  # no journal left


def test_a_server_that_cannot_be_reached_changes_nothing(project, engine):
    root, env, name, _ = project
    before = (root / ".env").read_text()
    db = engine.containers.get(f"{name}-app-db-1")
    db.pause()
    try:
        r = inv("secrets.rotate", "app_db_password", env=env, timeout=120)
    finally:
        db.unpause()
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("nothing was changed; fix that first"), r.stderr
    assert (root / ".env").read_text() == before
    assert not list((root / ".cache" / "rotation").glob("*.json"))


@pytest.mark.parametrize(("args", "message"), [
    (("nope",), "unknown secret 'nope' (rotatable: app_db_password, auth_db_password"),
    (("gateway_tls_key",), "secret 'gateway_tls_key' cannot be rotated here: no server reads it"),
    (("redis_password", "--env", "nope"), "unknown environment 'nope'"),
])
def test_what_cannot_be_rotated_is_one_line(project, args, message):
    root, env, _, _ = project
    before = (root / ".env").read_text()
    r = inv("secrets.rotate", *args, env=env)
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (root / ".env").read_text() == before


def test_a_value_from_the_process_environment_is_refused(project):
    root, env, _, _ = project
    r = inv("secrets.rotate", "redis_password", env={**env, "REDIS_PASSWORD": "from-the-shell"})
    assert r.returncode == 1
    assert "REDIS_PASSWORD comes from the process environment" in r.stderr and "move it to .env" in r.stderr
