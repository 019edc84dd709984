"""bench-rotate: what clients see while every password of the stack is rotated on a
Swarm (`inv secrets.rotate NAME --env sandbox`), against the naive rotation measured in
the same run on the same sandbox under the same load: the password changed on the
server, then the serving service updated in place with the new secret version
(`docker service update --secret-rm/--secret-add`, its own update_config).

The load is on the readiness path through the gateway (the api logs in to Postgres,
Redis and the broker as the clients do), plus the api's root. Prints failed requests,
p99 and the time each rotation took, and that time against a plain `inv deploy` of the
live tag (the bare step a rotation is built on) measured in the same run. Uses its own
sandbox (OPS_SANDBOX) and project directory, removed at the end."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import INV, QUICK, ROOT, build_api, inv_or_exit, trust_gateway

sys.path.insert(0, str(ROOT))
from ops.config import read_env_file  # noqa: E402
from tests.support import loadgen  # noqa: E402

SANDBOX = f"opsbench-rot-{secrets.token_hex(3)}"
REPO = f"ops-bench-{secrets.token_hex(3)}/api"
# Made by main() (copytree creates it): an import, or a refused option, leaves nothing.
PROJECT = Path(tempfile.gettempdir()) / f"opsbench-rotate-{secrets.token_hex(4)}"
# BENCH_QUICK=1: the first only (a database password: the costliest client move).
KEYS = ("app_db_password", "auth_db_password", "redis_password", "broker_password")[:1 if QUICK else None]


def env() -> dict:
    dotenv = read_env_file(ROOT / ".env")
    images = {k: v for k, v in dotenv.items() if k.endswith("_IMAGE") and v and k != "API_IMAGE"}
    # The passwords go to the project's .env.sandbox (where a rotation keeps them), never
    # the process environment.
    drop = {"APP_DB_PASSWORD", "AUTH_DB_PASSWORD", "REDIS_PASSWORD", "BROKER_PASSWORD"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **images,
            "OPS_SANDBOX": SANDBOX, "OPS_ROOT": str(PROJECT), "API_IMAGE": REPO}


ENV = env()


def inv(*args: str) -> subprocess.CompletedProcess:
    return inv_or_exit(ENV, *args)


def build(tags) -> None:
    build_api(REPO, tags)


class Loads:
    """The readiness path and the root, at `rate` each."""

    def __init__(self, url: str, rate: float):
        self.loads = [loadgen.Load(url + "/health/ready", rate=rate, threads=8),
                      loadgen.Load(url + "/", rate=rate, threads=8)]

    def __enter__(self):
        for load in self.loads:
            load.__enter__()
        return self

    def __exit__(self, *exc):
        for load in self.loads:
            load.__exit__(*exc)

    def window(self, fn):
        marks = [time.monotonic() - load._t0 for load in self.loads]
        began = time.monotonic()
        fn()
        took = time.monotonic() - began
        time.sleep(1.0)  # the requests in flight at the end belong to this step
        ends = [time.monotonic() - load._t0 for load in self.loads]
        samples = [s for load, a, b in zip(self.loads, marks, ends, strict=True)
                   for s in load.samples_so_far() if a <= s.t <= b]
        return loadgen.summary(samples), took


def row(name: str, summary: dict, took: float) -> str:
    return (f"{name:42} {summary['requests']:7} {summary['failed']:6} {summary['p50_ms']:7.1f} "
            f"{summary['p99_ms']:8.1f} {took:7.1f}")


def _ssh(host: dict) -> list[str]:
    return ["ssh", "-i", str(PROJECT / host["key"]), "-p", str(host["port"]),
            "-o", f"UserKnownHostsFile={PROJECT / '.sandbox' / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", f"root@{host['address']}"]


def naive(key: str) -> None:
    """What an operator does by hand: ALTER ROLE on the server (over ssh, docker exec),
    a new secret, then the serving color updated in place with it."""

    from ops.rotation import servers

    hosts = json.loads((PROJECT / ".sandbox" / "hosts.json").read_text())["hosts"]
    manager = next(h for h in hosts if h["role"] == "manager")
    status = json.loads(inv("deploy.status", "--env", "sandbox", "--json").stdout)
    app, live = status["app"], status["colors"][status["live"]]["service"]
    rows = {r["service"]: r for r in json.loads(inv("ps", "--env", "sandbox", "--json").stdout)}
    db = rows["app-db"]["tasks"][0]
    node = next(h for h in hosts if db["node"].endswith(h["name"]))
    new = secrets.token_urlsafe(32)
    script = servers.set_password(servers.Server("database", "app-db", "app", "app"), "", new)
    subprocess.run([*_ssh(node), str(script.command(db["container"]))], input=script.stdin,
                   text=True, check=True, capture_output=True)
    name = f"{app}_{key}_naive{secrets.token_hex(3)}"
    subprocess.run([*_ssh(manager), f"docker secret create {name} -"], input=new, text=True,
                   check=True, capture_output=True)
    current = subprocess.run([*_ssh(manager), f"docker service inspect {live} --format "
                              "'{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{end}}'"],
                             check=True, capture_output=True, text=True).stdout.split()
    old = next(n for n in current if n.startswith(f"{app}_{key}_"))
    subprocess.run([*_ssh(manager), f"docker service update --detach=false --quiet --secret-rm {old} "
                    f"--secret-add source={name},target={key} {live} >/dev/null 2>&1"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s on each path")
    args = parser.parse_args()
    print(f"sandbox {SANDBOX}: starting, building {REPO}:{{r1,r2}} ...", file=sys.stderr)
    shutil.copytree(ROOT / "compose", PROJECT / "compose", ignore=shutil.ignore_patterns("wheels"))
    PROJECT.chmod(0o700)  # the sandbox's key and passwords go in it
    (PROJECT / ".env.sandbox").write_text("".join(
        f"{k}={secrets.token_urlsafe(24)}\n"
        for k in ("APP_DB_PASSWORD", "AUTH_DB_PASSWORD", "REDIS_PASSWORD", "BROKER_PASSWORD")))
    (PROJECT / ".env.sandbox").chmod(0o600)
    try:
        inv("sandbox.up")
        build(["r1", "r2"])
        inv("deploy", "--env", "sandbox", "--tag", "r1")
        inv("deploy", "--env", "sandbox", "--tag", "r2")  # r1 idle: the rollback target
        trust_gateway(PROJECT)
        url = json.loads((PROJECT / ".sandbox" / "hosts.json").read_text())["url"]
        rows = []
        with Loads(url, args.rate) as loads:
            time.sleep(2)
            summary, took = loads.window(lambda: inv("deploy", "--env", "sandbox", "--tag", "r2"))
            baseline = took
            rows.append(row("inv deploy r2 (the live tag, baseline)", summary, took))
            for key in KEYS:
                summary, took = loads.window(lambda k=key: inv("secrets.rotate", k, "--env", "sandbox"))
                rows.append(row(f"inv secrets.rotate {key}", summary, took)
                            + f"   x{took / baseline:.2f} of a deploy")
            summary, took = loads.window(lambda: naive("app_db_password"))
            rows.append(row("naive: ALTER ROLE + service update", summary, took))
        print(f"\nload: {args.rate:.0f} req/s on /health/ready and {args.rate:.0f} on / "
              "through the gateway\n")
        print(f"{'step':42} {'reqs':>7} {'failed':>6} {'p50 ms':>7} {'p99 ms':>8} {'took s':>7}")
        for r in rows:
            print(r)
    finally:
        subprocess.run([*INV, "sandbox.down"], cwd=ROOT, env=ENV, capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", *[f"{REPO}:{t}" for t in ("r1", "r2")]],
                       capture_output=True)
        shutil.rmtree(PROJECT, ignore_errors=True)


if __name__ == "__main__":
    main()
