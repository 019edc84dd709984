"""bench-deploy: what clients see during blue-green deploys and rollbacks, against a
naive `docker service update --image` (stop-first) of the serving service, measured in
the same run on the same sandbox Swarm, under the same steady load through the gateway.

Prints failed requests, retried requests (a GET retried once after the server closed
an idle keep-alive connection, as curl and browsers do), p50/p99/max latency, the
switch time (nginx reload -> first response from the new color), the whole command's
time, and "served": from the command's start until the load sees only the version it
put live (what users see of a rollback). Uses its own sandbox (OPS_SANDBOX) and removes
it, and its images, at the end."""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import INV, QUICK, ROOT, build_api, inv_or_exit, sandbox_env, trust_gateway

sys.path.insert(0, str(ROOT))
from tests.support import loadgen  # noqa: E402

SANDBOX = f"opsbench-sbx-{secrets.token_hex(3)}"
REPO = f"ops-bench-{secrets.token_hex(3)}/api"
# Own project directory: the sandbox's state (.sandbox/) never touches the user's.
# Made by main() (copytree creates it): an import, or a refused option, leaves nothing.
PROJECT = Path(tempfile.gettempdir()) / f"opsbench-deploy-{secrets.token_hex(4)}"


ENV = sandbox_env(SANDBOX, PROJECT, REPO)


def inv(*args: str) -> subprocess.CompletedProcess:
    return inv_or_exit(ENV, *args)


def build(tags) -> None:
    build_api(REPO, tags)


def measured(load: loadgen.Load, fn) -> tuple[dict, float, str, float | None]:
    """(summary, seconds the command took, its stdout, seconds from its start until the
    load saw only the version it put live: what users see of a switch)."""
    start_t = time.monotonic() - load._t0
    began = time.monotonic()
    out = fn()
    took = time.monotonic() - began
    time.sleep(1.0)  # the requests in flight at the end belong to this step
    end_t = time.monotonic() - load._t0
    window = [s for s in load.samples_so_far() if start_t <= s.t <= end_t]
    return loadgen.summary(window), took, out, served_after(window, live_identity(out), start_t)


def live_identity(stdout) -> str | None:
    """The color/tag a deploy or rollback put live, from its summary line (None for the
    naive update, which prints none)."""
    if not isinstance(stdout, str):
        return None
    m = re.search(r"(?:rolled back to |: )(\w+/[\w.-]+)(?: is live| \(from)", stdout)
    return m.group(1) if m else None


def served_after(window, identity: str | None, start_t: float) -> float | None:
    """Seconds from start_t to the first response from `identity` after which every
    response came from it."""
    if not identity:
        return None
    other = [s.t for s in window if s.ok and f"{s.color}/{s.version}" != identity]
    after = [s.t for s in window if s.ok and f"{s.color}/{s.version}" == identity
             and (not other or s.t > max(other))]
    return after[0] - start_t if after else None


# Expand with a backfill: a nullable column, then 10k rows per transaction (a DO block
# may COMMIT when yoyo runs the file outside a transaction), so no row lock is held long.
BACKFILL = """-- transactional: false
-- bench-deploy: a column the old code never names, backfilled in batches.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS attempts bigint;
DO $$
DECLARE n bigint;
BEGIN
  LOOP
    UPDATE jobs SET attempts = 1
     WHERE id IN (SELECT id FROM jobs WHERE attempts IS NULL LIMIT 10000);
    GET DIAGNOSTICS n = ROW_COUNT;
    EXIT WHEN n = 0;
    COMMIT;
  END LOOP;
END $$;
"""
SEED = ("INSERT INTO jobs (id, payload, processed_by) SELECT gen_random_uuid(), "
        "jsonb_build_object('n', i), 'bench' FROM generate_series(1, {rows}) AS i")


def build_with_migration(base: str, tag: str, name: str, sql: str) -> None:
    """{REPO}:{tag}: {REPO}:{base} with one more migration file."""
    import base64

    data = base64.b64encode(sql.encode()).decode()
    dockerfile = (f"FROM {REPO}:{base}\nUSER root\nENV APP_VERSION={tag}\n"
                  f"RUN python3 -c \"import base64,pathlib; pathlib.Path('/srv/app/migrations/app/{name}')"
                  f".write_bytes(base64.b64decode('{data}'))\"\nUSER 10001:10001\n")
    subprocess.run(["docker", "build", "-q", "-t", f"{REPO}:{tag}", "-"], input=dockerfile, text=True,
                   check=True, capture_output=True)


def switch_seconds(stdout: str) -> float | None:
    m = re.search(r"switch ([0-9.]+)s", stdout)
    return float(m.group(1)) if m else None


def row(name: str, summary: dict, took: float, switch: float | None,
        served: float | None = None) -> str:
    return (f"{name:34} {summary['requests']:7} {summary['failed']:6} {summary['retried']:7} "
            f"{summary['p50_ms']:7.1f} {summary['p99_ms']:8.1f} {summary['max_ms']:8.1f} "
            f"{took:7.1f} " + (f"{switch:8.2f}" if switch is not None else "       -")
            + (f" {served:8.2f}" if served is not None else "        -"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1 if QUICK else 6,
                        help="deploy+rollback cycles (default 6; BENCH_QUICK=1: 1)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s (gateway limit: 100)")
    parser.add_argument("--rows", type=float, default=1000 if QUICK else 100_000,
                        help="rows the migration backfills (default 100k; BENCH_QUICK=1: 1000)")
    args = parser.parse_args()
    tags = ["b1", "b2", "b3"]
    print(f"sandbox {SANDBOX}: starting, building {REPO}:{{b1,b2,b3}} ...", file=sys.stderr)
    shutil.copytree(ROOT / "compose", PROJECT / "compose", ignore=shutil.ignore_patterns("wheels"))
    PROJECT.chmod(0o700)  # the sandbox's key and passwords go in it
    try:
        inv("sandbox.up")
        build(tags)
        url = json.loads((PROJECT / ".sandbox" / "hosts.json").read_text())["url"] + "/"
        inv("deploy", "--env", "sandbox", "--tag", "b1")
        trust_gateway(PROJECT)
        inv("deploy", "--env", "sandbox", "--tag", "b2")  # both colors exist from here on
        inv("rollback", "--env", "sandbox")
        rows, totals, figures = [], {"requests": 0, "failed": 0, "retried": 0}, {}
        with loadgen.Load(url, rate=args.rate) as load:
            time.sleep(2)
            for i in range(args.cycles):
                # Alternate b2/b3: the idle color always gets a real rollout to a new tag.
                tag = tags[1 + i % 2]
                for label, call in ((f"deploy {tag} (blue-green) #{i + 1}", ("deploy", "--tag", tag)),
                                    (f"rollback #{i + 1}", ("rollback",))):
                    summary, took, out, served = measured(
                        load, lambda c=call: inv(*c, "--env", "sandbox").stdout)
                    rows.append(row(label, summary, took, switch_seconds(out), served))
                    kind = "rollback" if label.startswith("rollback") else "deploy"
                    figures.setdefault(kind, []).append((took, served))
                    for k in totals:
                        totals[k] += summary[k]
            # The naive way, same load, same gateway: replace the serving service in place.
            status = json.loads(inv("deploy.status", "--env", "sandbox", "--json").stdout)
            live_svc = status["colors"][status["live"]]["service"]
            manager = next(h for h in json.loads((PROJECT / ".sandbox" / "hosts.json").read_text())["hosts"]
                           if h["role"] == "manager")
            ssh = ["ssh", "-i", str(PROJECT / manager["key"]), "-p", str(manager["port"]),
                   "-o", f"UserKnownHostsFile={PROJECT / '.sandbox' / 'known_hosts'}",
                   "-o", "StrictHostKeyChecking=yes", f"root@{manager['address']}"]
            naive_rows = []
            # Docker's default (one task at a time), then all tasks at once; each to a tag
            # the nodes have (b1, b2: the warm-up deployed both; b3 only from the second
            # cycle) that differs from what runs (the same image would update nothing).
            first = "b1" if status.get("live_tag") != "b1" else "b2"
            for parallelism, tag in ((1, first), (0, "b2" if first == "b1" else "b1")):
                update = (f"docker service update --detach=false --no-resolve-image "
                          f"--update-order stop-first --update-parallelism {parallelism} "
                          f"--image {REPO}:{tag} {live_svc} >/dev/null 2>&1")
                summary, took, _, _ = measured(load, lambda u=update: subprocess.run([*ssh, u], check=True))
                naive_rows.append(row(f"naive update, parallelism {parallelism}", summary, took, None))
            # A schema change through a deploy: the migration adds a column and backfills
            # `--rows` rows in batches while users are served; then a rollback to the old
            # code (on the new schema), then maintenance mode on and off.
            build_with_migration("b1", "b4", "0002.attempts.sql", BACKFILL)
            inv("exec", "--env", "sandbox", "app-db",
                f"psql -U app -d app -qc \"{SEED.format(rows=int(args.rows))}\"")
            summary, took, out, served = measured(
                load, lambda: inv("deploy", "--env", "sandbox", "--tag", "b4", "--json").stdout)
            record = json.loads(out)
            migrate_s = record.get("timings", {}).get("migrate")
            rows.append(row(f"deploy b4 + migration ({int(args.rows)} rows)", summary, took,
                            record.get("switch_seconds")))
            figures["migration"] = (migrate_s, summary["failed"])
            summary, took, out, served = measured(load, lambda: inv("rollback", "--env", "sandbox").stdout)
            rows.append(row("rollback after the migration", summary, took, switch_seconds(out), served))
            for state in ("on", "off"):
                summary, took, _, _ = measured(
                    load, lambda s=state: inv(f"maintenance.{s}", "--env", "sandbox").stdout)
                rows.append(row(f"maintenance {state} (503s expected)", summary, took, None))
        print(f"\nload: {args.rate:.0f} req/s through the gateway, {load.threads} keep-alive clients\n")
        print(f"{'step':34} {'reqs':>7} {'failed':>6} {'retried':>7} {'p50 ms':>7} {'p99 ms':>8} "
              f"{'max ms':>8} {'took s':>7} {'switch s':>8} {'served s':>8}")
        for r in rows:
            print(r)
        for r in naive_rows:
            print(r)
        print(f"\nblue-green total: {totals['requests']} requests, {totals['failed']} failed, "
              f"{totals['retried']} retried once (target: 0 failed of >= 5000)")
        if "migration" in figures:
            migrate_s, failed = figures["migration"]
            print(f"migration step: {migrate_s} s for {int(args.rows)} rows backfilled in batches "
                  f"(pending check, lint, restore point, apply), {failed} failed requests meanwhile")
        for kind, target in (("rollback", "served <= 2 s"), ("deploy", "took <= 8 s")):
            took = sorted(t for t, _ in figures.get(kind, []))
            served = sorted(s for _, s in figures.get(kind, []) if s is not None)
            if took:
                print(f"{kind}: took median {took[len(took) // 2]:.1f} s (max {took[-1]:.1f}); "
                      f"served by the new version after median "
                      f"{served[len(served) // 2] if served else float('nan'):.2f} s "
                      f"(max {served[-1] if served else float('nan'):.2f}); target: {target}")
    finally:
        subprocess.run([*INV, "sandbox.down"], cwd=ROOT, env=ENV, capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", *[f"{REPO}:{t}" for t in [*tags, "b4"]]],
                       capture_output=True)
        shutil.rmtree(PROJECT, ignore_errors=True)


if __name__ == "__main__":
    main()
