"""Schema migrations of the api's databases, with yoyo-migrations: plain SQL files in
app/migrations/<database>/ (a database of API_DATABASES by its logical name), applied
in name order, each in its own transaction unless its first lines say
`-- transactional: false` (CREATE INDEX CONCURRENTLY, a batched backfill). yoyo records
what ran in the database itself and holds a lock there while it applies, so two runs at
once apply each migration once.

    python3 -m app.migrate            apply what is pending, one line per migration
    python3 -m app.migrate --pending  print what is pending as JSON (id, database, sql)

The toolkit's contract (docs/deploy.md, "Migrations"): exit 0 when every database is
up to date; otherwise exit 1 with the failed migration and the database's error on the
last line of stderr."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from yoyo import read_migrations
from yoyo.backends import get_backend_class
from yoyo.connections import DatabaseURI
from yoyo.migrations import default_migration_table

from . import settings

HERE = Path(__file__).parent / "migrations"
LOCK_TIMEOUT = 60  # seconds to wait for another run's lock before giving up
# Each statement waits at most this long for a table lock, then fails the migration
# (run it again later): never a queue of the live color's queries behind an ALTER that
# waits on a long transaction. PGOPTIONS set by the caller wins.
os.environ.setdefault("PGOPTIONS", "-c lock_timeout=5s")


def _backend(db: settings.Database):
    # Built from parts, never a URL: a password with '@' or '/' needs no quoting.
    uri = DatabaseURI("postgresql+psycopg", db.user, db.password, db.host, db.port,
                      db.database, {"connect_timeout": "10"})
    backend = get_backend_class(uri.scheme)(uri, default_migration_table)
    backend.init_database()
    return backend


def _sources(dbs) -> list[tuple[settings.Database, Path]]:
    return [(db, HERE / db.name) for db in dbs if (HERE / db.name).is_dir()]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:400]


def pending() -> list[dict]:
    out = []
    for db, folder in _sources(settings.load().databases):
        backend = _backend(db)
        for m in backend.to_apply(read_migrations(str(folder))):
            path = Path(m.path)
            out.append({"database": db.name, "id": m.id, "file": f"{db.name}/{path.name}",
                        "sql": path.read_text(encoding="utf-8")})
    return out


def apply() -> int:
    count = 0
    for db, folder in _sources(settings.load().databases):
        backend = _backend(db)
        with backend.lock(timeout=LOCK_TIMEOUT):
            for m in backend.to_apply(read_migrations(str(folder))):
                started = time.monotonic()
                try:
                    backend.apply_one(m)
                except Exception as exc:  # noqa: BLE001 - said in one line, exit 1
                    print(f"migration {db.name}/{m.id} failed: {_one_line(exc)}",
                          file=sys.stderr, flush=True)
                    return 1
                count += 1
                print(f"{db.name}: applied {m.id} ({time.monotonic() - started:.2f}s)",
                      flush=True)
    print(f"migrations: {count} applied, every database up to date", flush=True)
    return 0


def main(argv: list[str]) -> int:
    try:
        if argv == ["--pending"]:
            print(json.dumps(pending()))
            return 0
        if argv:
            print(f"usage: python3 -m app.migrate [--pending] (got {' '.join(argv)})",
                  file=sys.stderr)
            return 2
        return apply()
    except Exception as exc:  # noqa: BLE001 - connection, lock timeout: one line
        print(f"migrations: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
