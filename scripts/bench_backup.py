"""db.backup vs bare pg_dump, zstd vs pg_dump's compression, drill vs bare pg_restore;
with --sandbox, the same against the deployed sandbox over SSH, the off-site copy
against rclone alone, and the outage of db.restore --env sandbox under load."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import INV, ROOT, SandboxHosts, bench_stack, compose_env, knob

RUNS = knob("RUNS", 2, 1)
SCALE = knob("PGBENCH_SCALE", 35, 1)  # ~530 MB of pgbench tables


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
    if "--sandbox" in sys.argv[1:]:
        run_sandbox()
        return
    work = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    try:
        with bench_stack(BACKUP_DIR=str(work / "backups"), INVOKE_BACKUP_VERIFY_AFTER="none") as env:
            run_all(env, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(env, work: Path) -> None:
    project = env["COMPOSE_PROJECT_NAME"]
    db = sh(["docker", "compose", "-p", project, "-f", "compose/compose.yaml", "ps", "-q",
             "app-db"], env=compose_env(env), capture_output=True, text=True).stdout.split()[0]
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


def _print(rows, header: str) -> None:
    print(f"\n{header}")
    print(f"{'measurement':52} {'seconds':>8} {'ratio':>7}  note")
    for label, t, ratio, note in rows:
        print(f"{label:52} {t:8.2f} {'' if ratio is None else f'{ratio:6.2f}x':>7}  {note}")


def run_sandbox() -> None:
    """On the deployed sandbox (`inv sandbox.up`, `inv deploy --env sandbox` first): a
    >= 500 MB database in the deployed app-db, `inv db.backup --env sandbox` against a
    bare `ssh manager docker exec ... pg_dump -Fc > file` (each compression, alternated),
    peak RSS, the off-site upload and its proof against `rclone copyto` alone (to an
    SFTP container on loopback), and the requests failing through the gateway while
    `inv db.restore --env sandbox` swaps the database."""
    sbx = SandboxHosts()
    status = subprocess.run([*INV, "deploy.status", "--env", "sandbox", "--json"], cwd=ROOT, text=True,
                            capture_output=True)
    if status.returncode != 0:
        sys.exit(f"bench: no deployed sandbox ({status.stderr.strip()[-200:]})")
    service = f"{json.loads(status.stdout)['app']}_app-db"
    # The sandbox hosts keep Docker's data on a tmpfs, whose pages count against the
    # database container's 512 MB limit: raised for the bench's >= 500 MB, restored after.
    limit = sh(sbx.ssh("manager", ["docker", "service", "inspect", "--format",
                                   "{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}", service]),
               capture_output=True, text=True).stdout.strip()
    sh(sbx.ssh("manager", ["docker", "service", "update", "-q", "--limit-memory", "2g", service]),
       stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="ops-bench-sbx-"))  # the backups too: removed after
    try:
        _sandbox_bench(sbx, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sh(sbx.ssh("manager", ["docker", "service", "update", "-q", "--limit-memory", f"{limit}b",
                               service]), stdout=subprocess.DEVNULL)


def _sandbox_bench(sbx, work: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.support import loadgen

    env = {**os.environ, "INVOKE_BACKUP_VERIFY_AFTER": "none", "INVOKE_BACKUP_PRUNE_AFTER": "false",
           "BACKUP_DIR": str(work / "backups")}
    ps = sh([*INV, "ps", "--env", "sandbox", "--json"], capture_output=True, text=True)
    task = {r["service"]: r for r in json.loads(ps.stdout)}["app-db"]["tasks"][0]
    node, cid = task["node"], task["container"]

    def sql(db: str, query: str) -> str:
        """SQL fed on stdin to psql in the deployed app-db's container, over ssh."""
        argv = sbx.ssh(node, f"docker exec -i {cid} sh -c 'psql -X -q -At -v ON_ERROR_STOP=1 "
                             f"-U \"$POSTGRES_USER\" -d {db}'")
        return sh(argv, input=query, capture_output=True, text=True).stdout.strip()

    # Generated by the server itself (no client process beside it in the container).
    size_sql = "SELECT coalesce(max(pg_database_size(datname)), 0) FROM pg_database WHERE datname = 'bench';"
    if int(sql("postgres", size_sql) or 0) < 500e6:
        print("generating >= 500 MB in the deployed app-db (database bench) ...", file=sys.stderr)
        sql("postgres", "DROP DATABASE IF EXISTS bench;")
        sql("postgres", "CREATE DATABASE bench;")
        sql("bench", "CREATE TABLE docs AS SELECT g AS id, md5(g::text) || md5((g * 31)::text) AS body, "
                     "random() AS score, now() - g * interval '1 second' AS at "
                     "FROM generate_series(1, 2000000) g;")
        sql("bench", "CREATE TABLE events AS SELECT g AS id, now() - g * interval '1 ms' AS at, "
                     "md5(g::text) || md5((g * 7)::text) AS payload, random() AS value "
                     "FROM generate_series(1, 2500000) g;")
        sql("bench", "CHECKPOINT;")
    size = sql("bench", "SELECT pg_database_size(current_database());")
    rows = []
    bare_file, zst = work / "bare.dump", work / "bare.dump.zst"
    dump = f'docker exec {cid} sh -c \'pg_dump -U "$POSTGRES_USER" -d bench -Fc{{z}}\''
    bare = {"pg_dump": (shlex.join(sbx.ssh(node, dump.format(z=""))) + f" > {bare_file}", bare_file),
            "zstd": (shlex.join(sbx.ssh(node, dump.format(z=" -Z0"))) + f" | zstd -q -T0 -3 > {zst}",
                     zst)}
    backup = ["db.backup", "--env", "sandbox", "--service", "app-db", "--db", "bench"]
    for mode, (bare_cmd, out) in bare.items():
        if mode == "zstd" and not shutil.which("zstd"):
            continue
        mode_env = {**env, "INVOKE_BACKUP_COMPRESSION": mode}
        pairs = [(timed_shell(bare_cmd), timed_inv(backup, mode_env)) for _ in range(RUNS)]
        t_bare = statistics.median(b for b, _ in pairs)
        t_ours = statistics.median(o[0] for _, o in pairs)
        rss = max(o[1] for _, o in pairs)
        rows.append((f"bare: ssh docker exec pg_dump{' -Z0 | zstd' if mode == 'zstd' else ' -Fc'} > file",
                     t_bare, None, f"{out.stat().st_size / 1e6:.1f} MB"))
        rows.append((f"inv db.backup --env sandbox ({mode}, no verify)", t_ours, t_ours / t_bare,
                     f"target <= 1.10x; peak RSS {rss / 1024:.1f} MB (target <= 80 MB); runs alternated"))
        out.unlink()
    newest = [p for p in sorted((work / "backups" / "sandbox" / "app-db" / "bench").iterdir())
              if p.name.endswith((".dump", ".zst"))][-1]
    rows += _offsite_rows(newest)
    sql("postgres", "DROP DATABASE bench;")  # the sandbox's tmpfs is small
    rows += _restore_outage(sbx, env, loadgen)
    _print(rows, f"sandbox database 'bench': {int(size) / 1e6:.0f} MB on disk; median of {RUNS} runs")


def _offsite_rows(backup_file: Path) -> list:
    """`rclone copyto` of the same file alone, against the toolkit's upload (dump,
    sidecar, manifest, and the remote's md5 read back) to an SFTP server on loopback."""
    sys.path.insert(0, str(ROOT))
    from ops.backup import layout, offsite
    from tests.support.sftp_target import sftp_target

    with sftp_target(ROOT, "bench", label="ops.bench=offsite") as (_, rc_env):
        o = offsite.offsite_config({"remotes": ["bench:/srv/b"]}, rc_env)
        bare_times, ours = [], []
        for i in range(RUNS):
            start = time.perf_counter()
            sh(["rclone", "copyto", "--stats=0", str(backup_file), f"bench:/srv/bare/{i}.dump"],
               env={**os.environ, **rc_env})
            bare_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            offsite.upload(o, layout.Backup(backup_file), "sandbox", "bench:/srv/b")
            ours.append(time.perf_counter() - start)
        t_bare, t_ours = statistics.median(bare_times), statistics.median(ours)
        size = backup_file.stat().st_size / 1e6
        return [("bare: rclone copyto (SFTP, loopback)", t_bare, None, f"{size:.0f} MB"),
                ("off-site upload + sidecar + manifest + md5 proof", t_ours, t_ours / t_bare,
                 "the proof: the local md5 and the remote's md5sum of the copy")]


def _restore_outage(sbx, env, loadgen) -> list:
    """GET /jobs/ID (a read of app-db through gateway and api) at 50 r/s while
    `inv db.restore --env sandbox` swaps the app database: failed requests and the
    span from the first failure to the last."""
    import requests

    base = sbx.url
    job = requests.post(f"{base}/jobs", json={"bench": "restore"}, timeout=10).json()["id"]
    deadline = time.monotonic() + 60
    while requests.get(f"{base}/jobs/{job}", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            sys.exit("bench: the job was never recorded by the worker")
        time.sleep(0.3)
    sh([*INV, "db.backup", "--env", "sandbox", "-s", "app-db", "--db", "app"], env=env,
       stdout=subprocess.DEVNULL)
    with loadgen.Load(f"{base}/jobs/{job}", rate=50, threads=8) as load:
        time.sleep(3)
        start = time.perf_counter()
        sh([*INV, "db.restore", "--env", "sandbox", "-s", "app-db", "--db", "app", "--latest",
            "--confirm", "app"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - start
        time.sleep(3)
    failed = [s for s in load.samples if not s.ok]
    span = (failed[-1].t - failed[0].t) if failed else 0.0
    total = len(load.samples)
    return [("inv db.restore --env sandbox (app, under load)", took, None,
             f"{len(failed)}/{total} requests failed through the gateway at 50 r/s; "
             f"outage (first to last failure) {span:.2f} s")]


if __name__ == "__main__":
    main()
