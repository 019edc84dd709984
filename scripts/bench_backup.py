"""db.backup vs bare pg_dump, zstd vs pg_dump's compression, drill vs bare pg_restore."""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import INV, ROOT, bench_stack

RUNS = int(os.environ.get("BENCH_RUNS", "2"))
SCALE = int(os.environ.get("BENCH_PGBENCH_SCALE", "35"))  # ~530 MB of pgbench tables


def sh(argv, env=None, **kw):
    return subprocess.run(argv, cwd=ROOT, env=env, check=True, **kw)


def timed_shell(cmd: str, env=None) -> float:
    start = time.perf_counter()
    sh(["bash", "-o", "pipefail", "-c", cmd], env=env)
    return time.perf_counter() - start


def timed_inv(args, env) -> tuple[float, int]:
    """Wall time and peak RSS (VmHWM, kB) of the inv process itself."""
    start = time.perf_counter()
    proc = subprocess.Popen([*INV, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    _, err = proc.communicate()
    t.join()
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: inv {' '.join(args)} failed: {err.strip()[-400:]}")
    return took, peak[0]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    try:
        with bench_stack(BACKUP_DIR=str(work / "backups"), INVOKE_BACKUP_VERIFY_AFTER="none") as env:
            run_all(env, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(env, work: Path) -> None:
    project = env["COMPOSE_PROJECT_NAME"]
    db = sh(["docker", "compose", "-p", project, "-f", "compose/compose.yaml", "ps", "-q",
             "app-db"], env=env, capture_output=True, text=True).stdout.split()[0]
    image = sh(["docker", "inspect", "-f", "{{.Config.Image}}", db], capture_output=True,
               text=True).stdout.strip()
    print(f"generating data (pgbench scale {SCALE} + 2M-row text table) ...", file=sys.stderr)
    sh(["docker", "exec", db, "sh", "-c",
        f'createdb -U "$POSTGRES_USER" bench && pgbench -i -q -s {SCALE} -U "$POSTGRES_USER" bench'],
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sh(["docker", "exec", db, "sh", "-c",
        'psql -X -q -U "$POSTGRES_USER" -d bench -c "CREATE TABLE docs AS SELECT g AS id, '
        "md5(g::text) || md5((g * 31)::text) AS body, random() AS score, "
        "now() - g * interval '1 second' AS at FROM generate_series(1, 2000000) g; "
        'CREATE INDEX ON docs (at);"'])
    size = sh(["docker", "exec", db, "sh", "-c",
               'psql -X -At -U "$POSTGRES_USER" -d bench -c "SELECT pg_database_size(\'bench\')"'],
              capture_output=True, text=True).stdout.strip()
    mb = int(size) / 1e6
    rows = []
    bare_file, zst = work / "bare.dump", work / "bare.dump.zst"
    bare_pg = f'docker exec {db} sh -c \'pg_dump -U "$POSTGRES_USER" -d bench -Fc\' > {bare_file}'
    bare_zstd = (f'docker exec {db} sh -c \'pg_dump -U "$POSTGRES_USER" -d bench -Fc -Z0\' '
                 f"| zstd -q -T0 -3 > {zst}")
    backup = ["db.backup", "--service", "app-db", "--db", "bench"]
    for mode, bare_cmd, out in (("pg_dump", bare_pg, bare_file), ("zstd", bare_zstd, zst)):
        if mode == "zstd" and not shutil.which("zstd"):
            continue
        t_bare = statistics.median(timed_shell(bare_cmd) for _ in range(RUNS))
        mode_env = {**env, "INVOKE_BACKUP_COMPRESSION": mode}
        runs = [timed_inv(backup, mode_env) for _ in range(RUNS)]
        t_ours, rss = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
        rows.append((f"bare {mode}: pg_dump{' | zstd -T0 -3' if mode == 'zstd' else ' -Fc'}",
                     t_bare, None, f"{out.stat().st_size / 1e6:.1f} MB"))
        rows.append((f"inv db.backup ({mode}, no verify)", t_ours, t_ours / t_bare,
                     f"target <= 1.10x; peak RSS of inv {rss / 1024:.1f} MB (target <= 80 MB)"))
        if mode == "pg_dump":
            t_pg = t_bare
    if shutil.which("zstd"):
        t_z = [r for r in rows if r[0].startswith("bare zstd")][0][1]
        rows.append(("zstd vs pg_dump's own compression (bare)", t_z, t_z / t_pg,
                     f"size {zst.stat().st_size / bare_file.stat().st_size:.2f}x"))
    # Where the overhead goes: exact row counts are a full scan of every table, run in
    # the dump's snapshot, on the same (CPU-limited) database container as pg_dump.
    sys.path.insert(0, str(ROOT))
    from ops.commands import pg

    count_file = work / "counts.sql"
    count_file.write_text(pg.ROW_COUNTS_SQL)
    t_counts = statistics.median(timed_shell(
        f'docker exec -i {db} sh -c \'psql -X -q -At -U "$POSTGRES_USER" -d bench\' '
        f"< {count_file} > /dev/null") for _ in range(RUNS))
    rows.append(("bare: exact row counts of every table (alone)", t_counts, None,
                 "part of every backup, run beside pg_dump"))
    t_read, _ = timed_inv(backup, {**env, "INVOKE_BACKUP_VERIFY_AFTER": "read"})
    rows.append(("inv db.backup (default: + read verification)", t_read, None, ""))

    # Same input on both sides: a backup taken with pg_dump's compression, like bare.dump.
    newest = str(sorted((work / "backups").rglob("*.dump"))[-1])
    t_drill, _ = timed_inv(["db.verify", "--file", newest, "--level", "restore"], env)
    name = f"ops-bench-bare-{secrets.token_hex(3)}"
    t_bare_restore = timed_shell(
        f"docker run -d --name {name} --network none -e POSTGRES_PASSWORD=x -e POSTGRES_DB=bench "
        f"{image} >/dev/null && until docker exec {name} pg_isready -q -h 127.0.0.1 -U postgres "
        f"-d bench; do sleep 0.5; done && docker exec -i {name} pg_restore -U postgres -d bench "
        f"--exit-on-error --single-transaction --no-owner < {bare_file}; rc=$?; "
        f"docker rm -f -v {name} >/dev/null; exit $rc")
    rows.append(("bare: docker run + pg_restore + rm", t_bare_restore, None, ""))
    rows.append(("inv db.verify --level restore (drill)", t_drill, t_drill / t_bare_restore,
                 "target <= 1.5x; includes checksum, read and count comparison"))

    print(f"\ndatabase 'bench': {mb:.0f} MB on disk; median of {RUNS} runs where repeated")
    print(f"{'measurement':46} {'seconds':>8} {'ratio':>7}  note")
    for label, t, ratio, note in rows:
        print(f"{label:46} {t:8.2f} {'' if ratio is None else f'{ratio:6.2f}x':>7}  {note}")


if __name__ == "__main__":
    main()
