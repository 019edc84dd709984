"""User errors through the real CLI: one `error:` line on stderr, non-zero exit, no
traceback, nothing changed."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from .conftest import ROOT, inv


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def project(tmp_path):
    """A project directory (OPS_ROOT) with its own .env, so the user's is never touched."""
    shutil.copytree(ROOT / "compose", tmp_path / "compose",
                    ignore=shutil.ignore_patterns("wheels"))
    (tmp_path / ".env").write_text("APP_DB_PASSWORD=a\nAUTH_DB_PASSWORD=b\nREDIS_PASSWORD=c\n"
                                   "BROKER_PASSWORD=d\n")
    return tmp_path


def env_for(project, **extra):
    return {**os.environ, "OPS_ROOT": str(project), **extra}


def test_malformed_env_names_file_and_line(project):
    (project / ".env").write_text("APP_DB_PASSWORD=a\n# ok\nthis line is broken\n")
    result = inv("config", env=env_for(project))
    assert_one_line_error(result, f"{project}/.env:3: cannot parse", "expected KEY=VALUE")


def test_malformed_env_file_of_an_environment(project):
    (project / ".env.qa").write_text("A=1\nB='unterminated\n")
    result = inv("up", "--env", "qa", env=env_for(project))
    assert_one_line_error(result, ".env.qa:2")


@pytest.mark.parametrize("name,fragment", [
    ("prod", "unknown environment 'prod' (known: local"),
    ("../../etc", "invalid environment name"),
    ("a;rm -rf /", "invalid environment name"),
])
def test_bad_env_names(project, name, fragment):
    result = inv("health", "--env", name, env=env_for(project))
    assert_one_line_error(result, fragment)
    assert result.returncode == 2  # the command line is wrong, like every refusal


def test_missing_secrets_are_named(project):
    (project / ".env").write_text("APP_DB_PASSWORD=a\n")
    result = inv("up", env=env_for(project))
    assert_one_line_error(result, "missing settings: AUTH_DB_PASSWORD, REDIS_PASSWORD, BROKER_PASSWORD")


def test_engine_not_running(project):
    down = env_for(project, DOCKER_HOST="unix:///nonexistent/docker.sock")
    for task in (["health"], ["ps"], ["scale", "api=2"]):
        assert_one_line_error(inv(*task, env=down), "Docker engine not reachable")


def test_unknown_service_for_exec_and_build(project):
    assert_one_line_error(inv("exec", "nope", "true", env=env_for(project)), "unknown service 'nope'")
    assert_one_line_error(inv("build", "--service", "nope", env=env_for(project)),
                          "unknown service 'nope'")


def test_help_never_shows_secrets(project):
    secret = "s3cr3t-value-from-env"
    env = env_for(project, APP_DB_PASSWORD=secret)
    for task in ("up", "health", "config", "scale"):
        result = inv("--help", task, env=env)
        assert result.returncode == 0 and secret not in result.stdout


def test_up_failure_names_unhealthy_service_with_health_output_and_logs(engine, tmp_path):
    """A dependency that never turns healthy: inv up explains it and exits non-zero."""
    from .conftest import free_port, project_leftovers, purge

    shutil.copytree(ROOT / "compose", tmp_path / "compose")
    compose_file = tmp_path / "compose" / "compose.yaml"
    text = compose_file.read_text()
    probe = 'test: ["CMD-SHELL", "redis-cli ping 2>&1 | grep -qE \'^(PONG|NOAUTH)\'"]'
    broken = text.replace(probe, 'test: ["CMD-SHELL", "echo redis-probe-says-no; exit 1"]')
    assert broken != text
    compose_file.write_text(broken.replace("start_period: 10s", "start_period: 0s"))
    # Only the image choices of the real .env (no secrets copied into a temp dir).
    from ops.config import read_env_file

    images = {k: v for k, v in read_env_file(ROOT / ".env").items() if k.endswith("_IMAGE")}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in images.items())
                                   + "APP_DB_PASSWORD=a1\nAUTH_DB_PASSWORD=b2\nREDIS_PASSWORD=c3\n"
                                   + "BROKER_PASSWORD=d4\n")
    project = f"opstest-fail-{os.getpid()}"
    env = env_for(tmp_path, COMPOSE_PROJECT_NAME=project, GATEWAY_PORT=str(free_port()))
    try:
        result = inv("up", "--timeout", "60", env=env, timeout=300)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "✗ redis" in result.stderr and "unhealthy" in result.stderr
        assert "last health check: exit 1: redis-probe-says-no" in result.stderr
        assert "| " in result.stderr  # the service's log tail
        # Compose gave up as soon as redis turned unhealthy (~30 s): not the 60 s budget.
        assert re.match(rf"error: stack '{project}' is not healthy: Compose stopped waiting "
                        r"after \d+s of 60s \(a container exited or turned unhealthy\)",
                        result.stderr.strip().splitlines()[-1])
    finally:
        inv("down", "--volumes", "--yes", env=env, timeout=300)
        left = project_leftovers(engine, project)
        purge(engine, project)
        assert not left


COMPOSE_ONLY = [["up"], ["down"], ["build"], ["clean"]]
SWARM_ONLY = [["deploy"], ["rollback"], ["deploy.finish"], ["deploy.status"],
              ["deploy.history"], ["deploy.remove", "--yes"], ["deploy.unlock"]]
SSH_ONLY = [["hosts.trust", "--yes"], ["hosts.provision"], ["images.deliver"]]
REFUSED = ([(t, "sandbox") for t in COMPOSE_ONLY] + [(t, "local-swarm") for t in COMPOSE_ONLY]
           + [(t, "local") for t in SWARM_ONLY + SSH_ONLY + [["swarm.init"]]]
           + [(t, "local-swarm") for t in SSH_ONLY])


@pytest.mark.parametrize("task,env_name", REFUSED, ids=lambda v: v if isinstance(v, str) else v[0])
def test_every_task_refuses_an_environment_it_does_not_act_on(project, task, env_name):
    """One line naming the task, the environment and what to use; exit 2; nothing made
    (no backup directory, no state, no connection: the sandbox is not even running)."""
    before = sorted(p.name for p in project.iterdir())
    result = inv(*task, "--env", env_name, env=env_for(project))
    assert result.returncode == 2
    assert_one_line_error(result, f"`inv {task[0]}` does not act on {env_name!r}", ": use ")
    assert sorted(p.name for p in project.iterdir()) == before


@pytest.mark.parametrize("task", [["db.backup"], ["db.verify", "--latest", "--level", "read"],
                                  ["db.restore", "-s", "app-db", "--latest", "--confirm", "app"]],
                         ids=lambda t: t[0])
def test_db_tasks_on_a_cluster_that_is_not_there_fail_in_one_line(project, task):
    """db.* act on a Swarm environment's own databases: with no sandbox running there is
    nothing to reach, said in one line; no backup of this machine's stack is made."""
    result = inv(*task, "--env", "sandbox", env=env_for(project), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_line_error(result, "")
    assert not (project / "backups" / "sandbox").exists()


def test_an_env_file_alone_names_no_machine(project):
    (project / ".env.qa").write_text("APP_DB_PASSWORD=x\n")
    for task in (["health"], ["db.backup"], ["deploy"]):
        assert_one_line_error(inv(*task, "--env", "qa", env=env_for(project)),
                              "environment 'qa' names no machine")


@pytest.mark.parametrize("args,fragment", [
    (["up", "--timeout", "x"], "--timeout must be a number from 1 to 86400, not 'x'"),
    (["health", "--wait", "x"], "--wait must be a number from 0 to 86400, not 'x'"),
    (["health", "--wait", "-3"], "--wait must be a number"),
    (["scale", "api=2", "--timeout", "nan"], "--timeout must be a number"),
    (["exec", "api", "true", "--index", "0"], "--index must be a whole number from 1 to 1000"),
    (["exec", "api", "true", "--index", "x"], "--index must be a whole number"),
    (["logs", "--tail", "abc"], "--tail must be a whole number from 0 to 10000000"),
    (["deploy.history", "--env", "sandbox", "--lines", "many"], "--lines must be a whole number"),
    (["monitoring.up", "--timeout", "0"], "--timeout must be a number from 1 to 86400, not '0'"),
    (["db.verify", "--latest", "--level", "bogus"], "--level must be checksum, read, restore, not 'bogus'"),
    (["db.verify", "--latest", "--on", "moon"], "--on must be here or manager, not 'moon'"),
])
def test_numeric_options_are_checked_before_anything_runs(project, args, fragment):
    assert_one_line_error(inv(*args, env=env_for(project)), fragment)


def test_config_of_a_swarm_environment_shows_its_target_and_no_secret(project):
    import json

    secret = "s3cr3t-value-from-env"
    r = inv("config", "--env", "local-swarm", "--json", env=env_for(project, APP_DB_PASSWORD=secret))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kind"] == "swarm" and data["app"] == "opsdemo-swarm"
    assert data["url"] == "https://127.0.0.1:8090" and data["deploy"]["gateway_port"] == 8090
    stack = data["stack"]  # rendered from compose.yaml + compose/deploy.yaml
    assert set(stack["base"]["services"]) == {"app-db", "auth-db", "pgbackrest", "redis", "rabbitmq",
                                              "gateway"}
    assert list(stack["blue"]["services"]) == ["blue"] and list(stack["followers"]["services"]) == [
        "worker"]
    assert any(n.startswith("security_opt (") for n in stack["notes"])
    assert secret not in r.stdout and data["variables"]["APP_DB_PASSWORD"]["value"] == "********"
    text = inv("config", "--env", "local-swarm", env=env_for(project, APP_DB_PASSWORD=secret))
    assert text.returncode == 0 and "Swarm on this engine" in text.stdout and secret not in text.stdout
    assert "translated for Swarm:" in text.stdout and "restart (app-db" in text.stdout


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_reader_that_leaves_early_is_not_an_error(project, unbuffered):
    """`inv config | head`: a closed pipe ends the task quietly (141), no traceback,
    whether stdout is block-buffered (cron, CI) or not."""
    import subprocess
    import sys

    env = {k: v for k, v in env_for(project).items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "config", "--env", "local-swarm"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err
