"""bench-faults: each fault of a deployed cluster, in one run, on an own sandbox Swarm
under steady load through the gateway (100 req/s): a node lost mid-rollout, a host
restarted (back empty, on new ports), the manager's engine restarted mid-deploy, the
SSH connection cut mid-switch, the manager's disk full, and `inv deploy` killed with -9
at each step.

For each: requests sent and failed (and the span of the failures), seconds until the
fault was noticed (the command's first line about it), seconds until the command exited
and its exit status, and the state afterwards: the live color (as recorded, and as
served), the lock, the last audit record and `inv health`. Removes its sandbox and images at the end."""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import INV, ROOT, build_api, inv_or_exit, sandbox_env, trust_gateway

sys.path.insert(0, str(ROOT))
from tests.support import loadgen  # noqa: E402

SANDBOX = f"opsbench-flt-{secrets.token_hex(3)}"
REPO = f"ops-bench-{secrets.token_hex(3)}/api"
# Made by main() (copytree creates it): an import, or a refused option, leaves nothing.
PROJECT = Path(tempfile.gettempdir()) / f"opsbench-faults-{secrets.token_hex(4)}"
TAGS = ["f1", "f2", "f3"]
STEPS = ["images", "upload", "base", "deploy ", "probe", "switch"]
RESTART_DOCKERD = ("kill $(pidof dockerd); while pidof dockerd >/dev/null; do sleep 0.2; done; "
                   "setsid dockerd >>/var/log/dockerd.log 2>&1 < /dev/null &")
FILL = ("set -e; root={root}; rm -rf /tmp/ops-full; cp -a $root /tmp/ops-full; "
        "mount -t tmpfs -o size=4m tmpfs $root; cp -a /tmp/ops-full/. $root/; "
        "dd if=/dev/zero of=$root/.fill bs=4k 2>/dev/null || true; truncate -s -16k $root/.fill")
UNFILL = "root={root}; umount $root && rm -rf /tmp/ops-full"


ENV = sandbox_env(SANDBOX, PROJECT, REPO)


def inv(*args: str) -> subprocess.CompletedProcess:
    return inv_or_exit(ENV, *args)


def quiet(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def host(role: str) -> str:
    return f"{SANDBOX}-{role}"


def on(role: str, script: str, detach: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", *(["-d"] if detach else []), host(role), "sh", "-c", script],
                          capture_output=True, text=True)


class Command:
    """`inv ARGS --env sandbox` in the background, its stderr lines timestamped."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([*INV, *args, "--env", "sandbox"], cwd=ROOT, env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stderr.readline, ""):
            self.lines.append((time.monotonic(), line.rstrip()))

    def until(self, text: str, timeout: float = 600) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((at for at, line in list(self.lines) if text in line), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None and not self.reader.is_alive():
                return None
            time.sleep(0.05)
        return None

    def wait(self, timeout: float = 900) -> int:
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return self.proc.returncode

    @property
    def last(self) -> str:
        return self.lines[-1][1] if self.lines else ""


def state() -> dict:
    status = json.loads(quiet("deploy.status", "--env", "sandbox", "--json").stdout or "{}")
    health = quiet("health", "--env", "sandbox", "--json", timeout=180)
    try:
        checks = json.loads(health.stdout)["checks"]
        ok = f"{sum(c['ok'] for c in checks)}/{len(checks)}"
    except (ValueError, KeyError):
        ok = "unreadable"
    served = (status.get("serving") or {})
    last = status.get("last") or {}
    return {"live": f"{status.get('live')}/{status.get('live_tag')}",
            "served": f"{served.get('color') or '-'}/{served.get('tag') or '-'}",
            "lock": "held" + (" (stale)" if status.get("stale") else "") if status.get("lock") else "free",
            "last": f"{last.get('action')} {last.get('outcome')}", "health": ok}


def next_tag() -> str:
    status = json.loads(quiet("deploy.status", "--env", "sandbox", "--json").stdout)
    used = {status["live_tag"], *(c["tag"] for c in status["colors"].values() if c)}
    return next(t for t in TAGS if t not in used)


def wait_ready(timeout: float = 180) -> None:
    """Every node Ready and every check of `inv health` passing again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if quiet("health", "--env", "sandbox", timeout=180).returncode == 0:
            return
        time.sleep(3)
    print("warning: the sandbox is not healthy again; the next fault starts anyway", file=sys.stderr)


def window(load: loadgen.Load, start: float, end: float) -> dict:
    return loadgen.summary([s for s in load.samples_so_far() if start <= s.t <= end])


def fault_node_lost(load) -> tuple:
    command = Command("deploy", "--tag", next_tag())
    command.until("==> deploy ")
    time.sleep(1.0)
    subprocess.run(["docker", "pause", host("worker")], capture_output=True)
    at = time.monotonic()
    try:
        noticed = command.until(f"node {host('worker')} (", timeout=120)
        code = command.wait()
        ended = time.monotonic()
    finally:
        subprocess.run(["docker", "unpause", host("worker")], capture_output=True)
    return at, noticed, ended, code, command.last


def fault_host_restarted(load) -> tuple:
    subprocess.run(["docker", "restart", host("worker")], capture_output=True)
    at = time.monotonic()
    up = quiet("sandbox.up", timeout=600)
    noticed = time.monotonic() if "joined the swarm" in up.stderr else None
    deploy = quiet("deploy", "--env", "sandbox", "--tag", next_tag())  # the images come back
    ended = time.monotonic()
    return at, noticed, ended, up.returncode or deploy.returncode, \
        (deploy.stderr.strip().splitlines() or [""])[-1]


def fault_engine_restart(load) -> tuple:
    command = Command("deploy", "--tag", next_tag())
    command.until("==> deploy ")
    time.sleep(1.0)
    at = time.monotonic()
    on("manager", RESTART_DOCKERD)  # returns once the old engine has stopped
    noticed = command.until("does not answer", timeout=300)
    code = command.wait()
    ended = time.monotonic()
    wait_ready()  # the engine back, its tasks restarted: then the re-run
    rerun = quiet("deploy", "--env", "sandbox", "--tag", next_tag())
    return at, noticed, ended, code, command.last + f" | re-run: exit {rerun.returncode}"


def fault_cut_mid_switch(load) -> tuple:
    root = f"/var/lib/ops-toolkit/{app()}/live/upstream.conf"
    up = shlex.quote(root)
    on("manager", f"o=$(cat {up}); while [ \"$(cat {up})\" = \"$o\" ]; do sleep 0.02; done; "
                  "pkill -f '[s]shd: root@'", detach=True)  # [s]: not this shell
    command = Command("deploy", "--tag", next_tag())
    at = command.until("==> switch") or time.monotonic()
    noticed = command.until("switch failed", timeout=120)
    code = command.wait()
    return at, noticed, time.monotonic(), code, command.last


def fault_full_disk(load) -> tuple:
    root = shlex.quote(f"/var/lib/ops-toolkit/{app()}")
    on("manager", FILL.format(root=root))
    try:
        command = Command("deploy", "--tag", next_tag())
        at = time.monotonic()
        noticed = command.until("No space left on device", timeout=300)
        code = command.wait()
        ended = time.monotonic()
    finally:
        on("manager", UNFILL.format(root=root))
    return at, noticed, ended, code, command.last


def fault_kill_9(load) -> tuple:
    tag = next_tag()
    for step in STEPS:
        command = Command("deploy", "--tag", tag)
        command.until(f"==> {step}")
        command.proc.send_signal(signal.SIGKILL)
        command.wait()
    at = time.monotonic()  # the run after the last kill: how soon it sees the stale lock
    final = Command("deploy", "--tag", tag)
    noticed = final.until("taking over a stale deploy lock", timeout=120)
    code = final.wait()
    return at, noticed, time.monotonic(), code, f"{final.last} (after {len(STEPS)} kills)"


def app() -> str:
    return json.loads(quiet("deploy.status", "--env", "sandbox", "--json").stdout)["app"]


FAULTS = [("node lost mid-rollout", fault_node_lost),
          ("host restarted + sandbox.up", fault_host_restarted),
          ("manager engine restart", fault_engine_restart),
          ("SSH cut mid-switch", fault_cut_mid_switch),
          ("manager disk full", fault_full_disk),
          ("kill -9 at 6 steps", fault_kill_9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s (gateway limit: 100)")
    parser.add_argument("--only", action="append", default=None,
                        help="run only the faults whose name contains this (repeatable)")
    args = parser.parse_args()
    chosen = [(n, f) for n, f in FAULTS if not args.only or any(o in n for o in args.only)]
    if not chosen:
        raise SystemExit(f"--only matches none of: {', '.join(n for n, _ in FAULTS)}")
    print(f"sandbox {SANDBOX}: starting, building {REPO}:{{{','.join(TAGS)}}} ...", file=sys.stderr)
    shutil.copytree(ROOT / "compose", PROJECT / "compose", ignore=shutil.ignore_patterns("wheels"))
    PROJECT.chmod(0o700)  # the sandbox's key and passwords go in it
    rows = []
    try:
        inv("sandbox.up")
        build_api(REPO, TAGS)
        url = json.loads((PROJECT / ".sandbox" / "hosts.json").read_text())["url"] + "/"
        inv("deploy", "--env", "sandbox", "--tag", TAGS[0])
        trust_gateway(PROJECT)
        inv("deploy", "--env", "sandbox", "--tag", TAGS[1])  # both colors from here on
        with loadgen.Load(url, rate=args.rate, timeout=3) as load:
            for name, fault in chosen:
                print(f"fault: {name} ...", file=sys.stderr)
                start = time.monotonic() - load._t0
                at, noticed, ended, code, last = fault(load)
                time.sleep(2)
                end = time.monotonic() - load._t0
                summary = window(load, start, end)
                failed = [x.t for x in load.samples_so_far() if start <= x.t <= end and not x.ok]
                summary["outage"] = (failed[-1] - failed[0]) if failed else 0.0
                after = state()
                rows.append((name, summary, None if noticed is None else noticed - at, ended - at,
                             code, after, last))
                wait_ready()
        print(f"\nload: {args.rate:.0f} req/s through the gateway (3 s client timeout)\n")
        print(f"{'fault':28} {'reqs':>6} {'failed':>6} {'outage s':>8} {'notice s':>8} "
              f"{'exit s':>7} {'rc':>3}  {'live':10} {'served':10} {'lock':6} {'last record':16} health")
        for name, s, noticed, took, code, after, _ in rows:
            print(f"{name:28} {s['requests']:>6} {s['failed']:>6} {s['outage']:>8.1f} "
                  f"{'-' if noticed is None else f'{noticed:.1f}':>8} {took:>7.1f} {code:>3}  "
                  f"{after['live']:10} {after['served']:10} {after['lock']:6} {after['last']:16} "
                  f"{after['health']}")
        print()
        for name, *_, last in rows:
            print(f"{name}: last line: {last[:300]}")
    finally:
        subprocess.run([*INV, "sandbox.down"], cwd=ROOT, env=ENV, capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", *[f"{REPO}:{t}" for t in TAGS]],
                       capture_output=True)
        shutil.rmtree(PROJECT, ignore_errors=True)


if __name__ == "__main__":
    main()
