"""Dependency checks: each returns (ok, latency_ms, detail) and never raises.

Postgres and broker connections are kept and reused (reuse.Kept): a readiness probe
costs a round trip, not a new backend plus SCRAM handshake, and a restarted database
is seen as up again on the next check.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pg8000.native
import redis

from . import jobs
from .reuse import Kept
from .settings import Database, Settings

_pg_conns: dict[str, Kept] = {}
_redis_clients: dict[tuple, redis.Redis] = {}
_publishers: dict[str, jobs.Publisher] = {}
_registry_lock = threading.Lock()


def _timed(fn):
    start = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # noqa: BLE001 - a check reports any failure as its detail
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return ok, round((time.perf_counter() - start) * 1000, 1), detail


def _connect(db: Database, timeout: float):
    return pg8000.native.Connection(
        db.user, host=db.host, port=db.port, database=db.database,
        password=db.password, timeout=timeout,
    )


def query(db: Database, timeout: float, sql: str, **params):
    """Run `sql` on the kept connection to `db`."""
    with _registry_lock:
        kept = _pg_conns.get(db.name)
        if kept is None:
            kept = _pg_conns[db.name] = Kept(lambda: _connect(db, timeout), lambda c: c.close())
    return kept.call(lambda conn: conn.run(sql, **params))


def undefined_table(exc: Exception) -> bool:
    """pg8000's error for a table that does not exist (SQLSTATE 42P01)."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return info.get("C") == "42P01"


def postgres(db: Database, timeout: float):
    def run():
        query(db, timeout, "SELECT 1")
        return "SELECT 1 ok"

    return _timed(run)


def publisher(settings: Settings) -> jobs.Publisher:
    with _registry_lock:
        pub = _publishers.get(settings.broker.address)
        if pub is None:
            pub = _publishers[settings.broker.address] = jobs.Publisher(
                settings.broker, settings.check_timeout)
        return pub


def broker(settings: Settings):
    def run():
        ready, consumers = publisher(settings).depth()
        return f"queue {settings.broker.queue}: {ready} ready, {consumers} consumer(s)"

    return _timed(run)


def redis_ping(settings: Settings):
    key = (settings.redis_host, settings.redis_port)
    with _registry_lock:
        client = _redis_clients.get(key)
        if client is None:
            client = _redis_clients[key] = redis.Redis(
                host=settings.redis_host, port=settings.redis_port,
                password=settings.redis_password or None,
                socket_timeout=settings.check_timeout,
                socket_connect_timeout=settings.check_timeout,
                retry_on_timeout=False,
            )

    def run():
        client.ping()
        return "PONG"

    return _timed(run)


def all_dependencies(settings: Settings) -> dict:
    """Every dependency checked at once: readiness costs the slowest check, not the sum."""
    probes = {f"postgres:{db.name}": (postgres, db, settings.check_timeout)
            for db in settings.databases}
    probes["redis"] = (redis_ping, settings)
    if settings.broker:
        probes["broker"] = (broker, settings)
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = {name: pool.submit(fn, *args) for name, (fn, *args) in probes.items()}
        results = {name: f.result() for name, f in futures.items()}
    return {
        name: {"status": "up" if ok else "down", "latency_ms": ms, "detail": detail}
        for name, (ok, ms, detail) in results.items()
    }
