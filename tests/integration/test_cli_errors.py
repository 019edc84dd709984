"""User errors through the real CLI: one `error:` line on stderr, non-zero exit, no
traceback, nothing changed."""

from __future__ import annotations

import os
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
    (tmp_path / ".env").write_text("APP_DB_PASSWORD=a\nAUTH_DB_PASSWORD=b\nREDIS_PASSWORD=c\n")
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


def test_missing_secrets_are_named(project):
    (project / ".env").write_text("APP_DB_PASSWORD=a\n")
    result = inv("up", env=env_for(project))
    assert_one_line_error(result, "missing settings: AUTH_DB_PASSWORD, REDIS_PASSWORD")


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
