"""Continuous archiving, measured in one run on a throwaway stack (prints ratios):

- RPO at kill -9 under 50 commits/s, over BENCH_KILLS kills: the rows the repository
  alone gives back (db.restore --to-time latest while the database is down) against the
  rows committed (target: at most 10 s of commits each);
- a point-in-time restore (db.restore --to-time latest) of a database of ~1 GB against
  db.restore of its dump, and against bare `pgbackrest restore` + recovery;
- pgbench TPS with archiving on (pgBackRest's async archive-push) against off (an empty
  archive_command, set and reset with a reload) (target: overhead at most 10 %).

dr.drill's RTO is not measured here yet: dr.drill is not built (issue #32, section 4).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import INV, ROOT, bench_stack, compose_env, knob

KILLS = knob("KILLS", 5, 1)
SCALE = knob("PGBENCH_SCALE", 65, 2)  # ~1 GB of pgbench tables
TPS_SECONDS = knob("TPS_SECONDS", 30, 5)
WRITE_EVERY = 0.02  # 50 commits/s


def sh(argv, **kw):
    return subprocess.run(argv, cwd=ROOT, check=True, **kw)


def inv(env, *args, ok=(0,), timeout=3600):
    r = subprocess.run([*INV, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode not in ok:
        sys.exit(f"bench: inv {' '.join(args)} failed: {r.stderr.strip()[-1500:]}")
    return r


def container(env, service) -> str:
    return sh(["docker", "compose", "-p", env["COMPOSE_PROJECT_NAME"], "-f", "compose/compose.yaml",
               "ps", "-aq", service], env=compose_env(env), capture_output=True,
              text=True).stdout.split()[0]


def psql(db: str, sql: str, database: str = "app") -> str:
    return sh(["docker", "exec", "-i", db, "sh", "-c",
               f'psql -X -q -At -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d {database}'],
              input=sql, capture_output=True, text=True).stdout.strip()


def wait_ready(db: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["docker", "exec", db, "pg_isready", "-q", "-h", "127.0.0.1"]).returncode:
        if time.monotonic() > deadline:
            sys.exit(f"bench: {db} not ready after {timeout:.0f}s")
        time.sleep(0.5)


def writer(db: str, seconds: float) -> subprocess.Popen:
    loops = int(seconds / WRITE_EVERY)
    sql = (f"DO $$ BEGIN FOR i IN 1..{loops} LOOP INSERT INTO ticks DEFAULT VALUES; COMMIT; "
           f"PERFORM pg_sleep({WRITE_EVERY}); END LOOP; END $$;\n")
    proc = subprocess.Popen(["docker", "exec", "-i", db, "sh", "-c",
                             'psql -X -q -U "$POSTGRES_USER" -d app'], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    proc.stdin.write(sql)
    proc.stdin.close()
    return proc


def one_kill(env, n: int) -> tuple[int, int, float]:
    """(committed, recovered, commits per second) of one kill -9 after 8 s of writes."""
    from ops.backup import manifest

    db = container(env, "app-db")
    psql(db, "CREATE TABLE IF NOT EXISTS ticks (id bigserial PRIMARY KEY, "
             "at timestamptz DEFAULT clock_timestamp()); TRUNCATE ticks;")
    w = writer(db, 20)
    time.sleep(8)
    sh(["docker", "update", "--restart=no", db], capture_output=True)
    try:
        sh(["docker", "kill", "--signal", "KILL", db], capture_output=True)
        w.wait(timeout=30)
        kept = inv(env, "db.restore", "-s", "app-db", "--to-time", "latest", "--yes", ok=(1,))
        path = re.search(r"--file (\S+)\)", kept.stderr)
        if not path:
            sys.exit(f"bench: kill {n}: no point-in-time copy kept: {kept.stderr.strip()[-600:]}")
        recovered = manifest.read(Path(path.group(1) + ".json"))["tables"]["public.ticks"]
    finally:
        sh(["docker", "update", "--restart=unless-stopped", db], capture_output=True)
        sh(["docker", "start", db], capture_output=True)
    wait_ready(db)
    committed = int(psql(db, "SELECT count(*) FROM ticks;"))
    first_last = psql(db, "SELECT extract(epoch FROM max(at) - min(at)) FROM ticks;")
    rate = committed / max(float(first_last or 0), 0.001)
    return committed, recovered, rate


def timed(argv, env=None) -> float:
    start = time.perf_counter()
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:6])} failed: {r.stderr.strip()[-800:]}")
    return time.perf_counter() - start


def bare_pgbackrest_restore(env) -> float:
    """`pgbackrest restore` of app-db to the end of the archive in a throwaway container
    of the same image on the repository's volume, until the server accepts connections."""
    repo = container(env, "pgbackrest")
    image = sh(["docker", "inspect", "-f", "{{.Config.Image}}", repo], capture_output=True,
               text=True).stdout.strip()
    volume = next(m["Name"] for m in json.loads(sh(["docker", "inspect", repo], capture_output=True,
                                                     text=True).stdout)[0]["Mounts"]
                  if m["Destination"] == "/var/lib/pgbackrest")
    name = f"ops-bench-pitr-{secrets.token_hex(3)}"
    script = ("set -e; pgbackrest --stanza=app-db --pg1-path=/var/lib/postgresql/data "
              "--repo1-path=/var/lib/pgbackrest --log-level-console=warn --type=default restore; "
              "exec postgres -D /var/lib/postgresql/data -c archive_mode=off -c listen_addresses=''")
    start = time.perf_counter()
    try:
        sh(["docker", "run", "-d", "--name", name, "--network", "none", "--user", "postgres",
            "--entrypoint", "sh", "-v", f"{volume}:/var/lib/pgbackrest:ro", image, "-c", script],
           capture_output=True)
        deadline = time.monotonic() + 3600
        while subprocess.run(["docker", "exec", name, "pg_isready", "-q"]).returncode:
            if subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                              capture_output=True, text=True).stdout.strip() != "true":
                logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                sys.exit(f"bench: bare pgbackrest restore failed: {logs.stderr.strip()[-600:]}")
            if time.monotonic() > deadline:
                sys.exit("bench: bare pgbackrest restore not ready after an hour")
            time.sleep(0.2)
        # Recovery done: the server answers only once it has replayed to the end.
        return time.perf_counter() - start
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


def tps(db: str, archive_command: str | None) -> float:
    if archive_command is None:
        psql(db, "ALTER SYSTEM RESET archive_command; SELECT pg_reload_conf();")
    else:
        psql(db, f"ALTER SYSTEM SET archive_command = '{archive_command}'; SELECT pg_reload_conf();")
    out = sh(["docker", "exec", db, "sh", "-c",
              f'pgbench -U "$POSTGRES_USER" -c 4 -j 2 -T {TPS_SECONDS:g} -n bench'],
             capture_output=True, text=True).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ops-bench-pitr-"))
    sys.path.insert(0, str(ROOT))
    rows = []
    try:
        with bench_stack(BACKUP_DIR=str(work / "backups"), INVOKE_BACKUP_VERIFY_AFTER="checksum") as env:
            inv(env, "db.backup", "-s", "app-db", "--base", "full")
            # RPO at kill -9
            kills = []
            for n in range(1, int(KILLS) + 1):
                committed, recovered, rate = one_kill(env, n)
                lost_s = (committed - recovered) / rate
                kills.append(lost_s)
                print(f"kill {n}: {committed} committed, {recovered} recovered, "
                      f"{committed - recovered} lost = {lost_s:.2f} s at {rate:.0f}/s", file=sys.stderr)
            rows.append((f"RPO at kill -9, worst of {len(kills)} (s of commits)", max(kills), None,
                         f"median {statistics.median(kills):.2f} s; target <= 10 s"))

            db = container(env, "app-db")
            print(f"generating data (pgbench scale {SCALE}) ...", file=sys.stderr)
            sh(["docker", "exec", db, "sh", "-c",
                f'createdb -U "$POSTGRES_USER" bench && pgbench -i -q -s {SCALE} -U "$POSTGRES_USER" bench'],
               capture_output=True)
            mb = int(psql(db, "SELECT pg_database_size('bench');", "bench")) / 1e6
            inv(env, "db.backup", "-s", "app-db", "--db", "bench")  # the dump
            inv(env, "db.backup", "-s", "app-db", "--base", "full")
            dump = next(p for p in sorted((work / "backups").rglob("*")) if p.parent.name == "bench"
                        and re.fullmatch(r"\d{8}T\d{6}Z\.dump(\.zst)?", p.name))
            t_dump = timed([*INV, "db.restore", "-s", "app-db", "--db", "bench", "--file", str(dump),
                            "--yes"], env)
            t_pitr = timed([*INV, "db.restore", "-s", "app-db", "--db", "bench", "--to-time", "latest",
                            "--yes"], env)
            t_bare = bare_pgbackrest_restore(env)
            rows.append((f"db.restore of the dump ({mb:.0f} MB database)", t_dump, None, ""))
            rows.append(("db.restore --to-time latest (PITR)", t_pitr, t_pitr / t_dump,
                         "vs the dump's restore: recovers the whole cluster, then dumps and swaps"))
            rows.append(("bare: pgbackrest restore + recovery to ready", t_bare, None, ""))
            rows.append(("db.restore --to-time latest vs bare pgbackrest", t_pitr, t_pitr / t_bare,
                         "the rest: the checked dump, the safety copy, the swap"))

            psql(db, "SELECT 1;", "bench")
            # On first: off leaves its segments waiting, which on would then push.
            on = statistics.median(tps(db, None) for _ in range(2))
            off = statistics.median(tps(db, "") for _ in range(2))
            psql(db, "ALTER SYSTEM RESET archive_command; SELECT pg_reload_conf();")
            rows.append(("pgbench TPS, archiving off (bare)", off, None, "empty archive_command"))
            rows.append(("pgbench TPS, archiving on (pgBackRest async)", on, on / off,
                         f"overhead {100 * (1 - on / off):.1f} %; target <= 10 %"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'measurement':52} {'value':>9} {'ratio':>7}  note")
    for label, v, ratio, note in rows:
        print(f"{label:52} {v:9.2f} {'' if ratio is None else f'{ratio:6.2f}x':>7}  {note}")
    print("dr.drill RTO: not measured (inv dr.drill is not built yet)")


if __name__ == "__main__":
    main()
