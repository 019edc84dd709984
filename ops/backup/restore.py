"""Putting a backup back: into a new database first, then a swap.

pg_restore runs with --exit-on-error in a single transaction into `<db>__restore_<ts>`;
its row counts must equal the manifest's before anything is touched. Only then are the
live database's connections ended and the two renamed (a few milliseconds). Any failure
before the swap drops the new database and leaves the live one exactly as it was.
"""

from __future__ import annotations

import secrets

from ..commands import pg
from ..errors import OpsError
from ..text import table
from . import layout, manifest
from .pgexec import Database, feed_from, run_sql
from .verify import compare_counts


def _q(name: str) -> str:
    return '"' + pg.check_db_name(name).replace('"', '""') + '"'


def _lit(name: str) -> str:
    return "'" + pg.check_db_name(name) + "'"


def swap_sql(live: str, fresh: str, old: str) -> str:
    """End the live database's sessions, then both renames in one transaction."""
    # Names are validated by pg.check_db_name (no quotes possible) before being quoted.
    sessions = (f"SELECT pid FROM pg_stat_activity WHERE datname IN ({_lit(live)}, {_lit(fresh)}) "  # noqa: S608
                "AND pid <> pg_backend_pid()")
    return "\n".join([
        f"ALTER DATABASE {_q(live)} WITH ALLOW_CONNECTIONS false;",
        f"SELECT count(pg_terminate_backend(pid)) FROM ({sessions}) s;",  # noqa: S608
        # Termination is asynchronous: wait (bounded) until those sessions are gone.
        "DO $$ BEGIN FOR i IN 1..100 LOOP "
        f"EXIT WHEN NOT EXISTS ({sessions}); PERFORM pg_sleep(0.05); END LOOP; END $$;",
        "BEGIN;",
        f"ALTER DATABASE {_q(live)} RENAME TO {_q(old)};",
        f"ALTER DATABASE {_q(fresh)} RENAME TO {_q(live)};",
        "COMMIT;",
    ])


def counts(target: Database, db: str) -> dict[str, int]:
    return pg.parse_tagged(run_sql(target.container, target.user, db, pg.ROW_COUNTS_SQL))["COUNT"]


def confirmation(env: str, db: str, yes: bool, confirm: str | None, tty: bool) -> str:
    """How a restore is confirmed: "none", "ask" (y/N) or "type" (the database name).

    Locally --yes suffices. Elsewhere the database name must be typed, or given ahead
    with --confirm (for automation); --yes alone is not enough to replace it.
    """
    if confirm is not None and confirm != db:
        raise OpsError(f"--confirm {confirm!r} does not match the database {db!r}")
    if env == "local":
        if yes or confirm == db:
            return "none"
        if not tty:
            raise OpsError("replacing a database: refusing without --yes (no terminal to ask on)")
        return "ask"
    if confirm == db:
        return "none"
    if not tty:
        raise OpsError(f"outside --env local, type the database name: pass --confirm {db}")
    return "type"


def refuse_unverified(backup: layout.Backup, data: dict) -> None:
    if manifest.failed(data):
        last_bad = next(e for e in reversed(data["verifications"]) if not e.get("ok"))
        raise OpsError(f"refusing {backup.path.name}: its {last_bad['level']} verification failed "
                       f"at {last_bad['at']} ({last_bad['detail'][:120]})")


def restore(backup: layout.Backup, data: dict, target: Database) -> dict:
    """Restore into target.db via a new database and a swap; returns row counts."""
    stamp = layout.stamp(backup.taken_at)
    fresh = f"{target.db[:30]}__restore_{secrets.token_hex(3)}"
    old = f"{target.db[:30]}__old_{stamp[:15].replace('T', '')}"
    admin = "postgres" if target.db != "postgres" else "template1"
    before = counts(target, target.db)
    run_sql(target.container, target.user, admin, f"CREATE DATABASE {_q(fresh)};")
    swapped = False
    try:
        feed_from(target.container.exec(pg.pg_restore_into(target.user, fresh), stdin=True),
                  backup.path, f"pg_restore of {backup.path.name} into {fresh}",
                  decompress=backup.compressed)
        restored = counts(target, fresh)
        problems = compare_counts(data.get("tables") or {}, restored)
        if problems:
            raise OpsError(f"restored data differs from the manifest: {'; '.join(problems[:5])}")
        # The swap: no new connections to the live database, end the existing ones, rename.
        run_sql(target.container, target.user, admin, swap_sql(target.db, fresh, old))
        swapped = True
        run_sql(target.container, target.user, admin, f"DROP DATABASE {_q(old)} WITH (FORCE);")
    except BaseException:
        if not swapped:
            run_sql(target.container, target.user, admin,
                    f"ALTER DATABASE {_q(target.db)} WITH ALLOW_CONNECTIONS true;\n"
                    f"DROP DATABASE IF EXISTS {_q(fresh)} WITH (FORCE);")
        raise
    return {"before": before, "after": counts(target, target.db), "backup": data.get("tables") or {}}


def comparison_table(result: dict) -> str:
    tables = sorted(set(result["before"]) | set(result["after"]) | set(result["backup"]))
    rows = [("TABLE", "BEFORE", "AFTER", "BACKUP")]
    for t in tables:
        rows.append((t, *(str(result[k].get(t, "-")) for k in ("before", "after", "backup"))))
    return "\n".join(table(rows, right=frozenset({1, 2, 3}), pad_last=True))
