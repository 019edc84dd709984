"""Commands (`line.Line`s, run without a shell) and SQL for the Postgres tools, run
inside the database container (client major = server major). The container's own
POSTGRES_USER is used over the local socket."""

from __future__ import annotations

import re

from .line import Line, cmd

DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
SNAPSHOT = re.compile(r"^[0-9A-F]+-[0-9A-F]+-[0-9]+$")

# Row counts of every user table, in one statement, so they all come from the snapshot
# of the transaction that runs it (the same one pg_dump is given).
ROW_COUNTS_SQL = (
    "SELECT 'COUNT' || chr(9) || n.nspname || '.' || c.relname || chr(9) || "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "n.nspname, c.relname), false, true, '')))[1]::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
    "ORDER BY 1;"
)

LIST_DATABASES_SQL = (
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
    "AND datname <> 'postgres' ORDER BY 1;"
)


def check_db_name(name: str) -> str:
    if not isinstance(name, str) or not DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    return name


def psql(user: str, db: str, *extra: str) -> Line:
    return cmd("psql", "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
               "-U", user, "-d", check_db_name(db), *extra)


def snapshot_session_script() -> str:
    """Fed to a psql session that must stay open while pg_dump uses its snapshot."""
    return (
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
        "SELECT 'SNAPSHOT' || chr(9) || pg_export_snapshot();\n"
        "SELECT 'VERSION' || chr(9) || current_setting('server_version');\n"
        "SELECT 'READY';\n"
    )


def snapshot_counts_script() -> str:
    """Sent to the same session once pg_dump has started: counts run beside the dump."""
    return f"{ROW_COUNTS_SQL}\nSELECT 'COUNTED';\n"


def pg_dump(user: str, db: str, snapshot: str | None = None, compress: int | None = None) -> Line:
    argv = ["pg_dump", "-w", "-U", user, "-d", check_db_name(db), "--format=custom"]
    if snapshot:
        if not SNAPSHOT.match(snapshot):
            raise ValueError(f"invalid snapshot id {snapshot!r}")
        argv.append(f"--snapshot={snapshot}")
    if compress is not None:
        argv.append(f"--compress={int(compress)}")
    return cmd(*argv)


def pg_restore_read_all() -> Line:
    """Reads every block of a custom-format archive from stdin, writing nothing."""
    return cmd("pg_restore", "--file=/dev/null")


def pg_restore_into(user: str, db: str) -> Line:
    return cmd("pg_restore", "-w", "-U", user, "-d", check_db_name(db), "--exit-on-error",
               "--single-transaction", "--no-owner", "--no-privileges")


def parse_tagged(output: str) -> dict:
    """Lines `TAG<TAB>a<TAB>b` from the session script -> {"SNAPSHOT": ..., "COUNT": {...}}."""
    out: dict = {"COUNT": {}}
    for line in output.splitlines():
        parts = line.split("\t")
        if parts[0] == "COUNT" and len(parts) == 3:
            out["COUNT"][parts[1]] = int(parts[2])
        elif parts[0] in ("SNAPSHOT", "VERSION") and len(parts) == 2:
            out[parts[0]] = parts[1]
        elif parts[0] in ("READY", "COUNTED"):
            out[parts[0]] = True
    return out
