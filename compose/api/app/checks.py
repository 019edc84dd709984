"""Dependency checks: each returns (ok, latency_ms, detail) and never raises."""

import time
from concurrent.futures import ThreadPoolExecutor

import pg8000.native
import redis

from .settings import Database, Settings


def _timed(fn):
    start = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # noqa: BLE001 - a check reports any failure as its detail
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return ok, round((time.perf_counter() - start) * 1000, 1), detail


def postgres(db: Database, timeout: float):
    def run():
        conn = pg8000.native.Connection(
            db.user, host=db.host, port=db.port, database=db.database,
            password=db.password, timeout=timeout,
        )
        try:
            conn.run("SELECT 1")
        finally:
            conn.close()
        return "SELECT 1 ok"

    return _timed(run)


def redis_ping(settings: Settings):
    def run():
        client = redis.Redis(
            host=settings.redis_host, port=settings.redis_port,
            password=settings.redis_password or None,
            socket_timeout=settings.check_timeout,
            socket_connect_timeout=settings.check_timeout,
        )
        try:
            client.ping()
        finally:
            client.close()
        return "PONG"

    return _timed(run)


def all_dependencies(settings: Settings) -> dict:
    """Every dependency checked at once: readiness costs the slowest check, not the sum."""
    jobs = {f"postgres:{db.name}": (postgres, db, settings.check_timeout)
            for db in settings.databases}
    jobs["redis"] = (redis_ping, settings)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(fn, *args) for name, (fn, *args) in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    return {
        name: {"status": "up" if ok else "down", "latency_ms": ms, "detail": detail}
        for name, (ok, ms, detail) in results.items()
    }
