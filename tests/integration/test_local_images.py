"""The local stand-in images keep the official images' contracts (used when no
registry is reachable, as on this machine)."""

from __future__ import annotations

import secrets
import time

import pytest

from ops.config import ROOT, read_env_file

pytestmark = pytest.mark.integration


def image(var: str) -> str:
    return read_env_file(ROOT / ".env").get(var) or pytest.fail(f"{var} not set in .env")


def wait_ready(c, args, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, _ = c.exec_run(args)
        if code == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"not ready: {c.logs(tail=20).decode()}")


def test_postgres_contract(engine, tmp_path):
    """POSTGRES_USER/DB, *_FILE secrets, PGDATA, initdb.d (.sql and .sh), pg_isready."""
    password = secrets.token_urlsafe(12)
    (tmp_path / "secret").write_text(password + "\n")
    init = tmp_path / "init"
    init.mkdir()
    (init / "01-schema.sql").write_text("CREATE TABLE seeded (id int); INSERT INTO seeded VALUES (1), (2);")
    (init / "02-extra.sh").write_text('psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" '
                                      "-c 'CREATE TABLE from_shell (x int)'\n")
    (tmp_path / "secret").chmod(0o644)
    for p in (init, *init.iterdir()):
        p.chmod(0o755)
    c = engine.containers.run(
        image("POSTGRES_IMAGE"), detach=True, network_mode="none",
        environment={"POSTGRES_USER": "owner", "POSTGRES_DB": "shop",
                     "POSTGRES_PASSWORD_FILE": "/run/secret", "PGDATA": "/var/lib/postgresql/data/pg"},
        volumes={str(tmp_path / "secret"): {"bind": "/run/secret", "mode": "ro"},
                 str(init): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"}})
    try:
        wait_ready(c, ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "owner", "-d", "shop"])
        code, out = c.exec_run(["psql", "-At", "-U", "owner", "-d", "shop", "-c",
                                "SELECT count(*) FROM seeded; SELECT to_regclass('from_shell'); "
                                "SHOW data_directory; SELECT rolsuper FROM pg_roles WHERE rolname = 'owner'"])
        assert code == 0, out
        assert out.decode().split() == ["2", "from_shell", "/var/lib/postgresql/data/pg", "t"]
        # the password from the _FILE works over TCP (scram), a wrong one does not
        ok, _ = c.exec_run(["psql", "-h", "127.0.0.1", "-U", "owner", "-d", "shop", "-c", "SELECT 1"],
                           environment={"PGPASSWORD": password})
        bad, _ = c.exec_run(["psql", "-h", "127.0.0.1", "-U", "owner", "-d", "shop", "-c", "SELECT 1"],
                            environment={"PGPASSWORD": "wrong"})
        assert (ok, bad) == (0, 2)
        code, out = c.exec_run(["sh", "-c", "cat /proc/1/status | grep '^Uid'"])
        assert out.decode().split()[1] != "0"  # the server does not run as root
    finally:
        c.remove(force=True, v=True)


def test_postgres_refuses_to_start_without_password(engine):
    c = engine.containers.run(image("POSTGRES_IMAGE"), detach=True, network_mode="none")
    try:
        assert c.wait(timeout=60)["StatusCode"] != 0
        assert "POSTGRES_PASSWORD is not set" in c.logs().decode()
    finally:
        c.remove(force=True, v=True)


def run_once(engine, img, command, **kw) -> str:
    """Run to completion; remove the container *and* its anonymous volumes (VOLUME /data)."""
    c = engine.containers.run(img, command, detach=True, network_mode="none", **kw)
    try:
        assert c.wait(timeout=60)["StatusCode"] == 0, c.logs().decode()
        return c.logs(stderr=False).decode()
    finally:
        c.remove(force=True, v=True)


def test_nginx_user_and_redis_contract(engine):
    out = run_once(engine, image("NGINX_IMAGE"),
                   ["sh", "-c", "id -u nginx; id -g nginx; command -v curl"]).split()
    assert out[:2] == ["101", "101"] and out[2].endswith("curl")
    out = run_once(engine, image("REDIS_IMAGE"), ["sh", "-c", "id -un; redis-server --version"],
                   user="redis")
    assert out.startswith("redis\n") and "Redis server v=7" in out
