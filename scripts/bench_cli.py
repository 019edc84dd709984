"""Timings of `inv --list`, `inv health` and `inv up` next to the bare tools (see bench-cli)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from benchlib import INV, ROOT, SandboxHosts, bench_stack, compose_env, knob, trust_gateway

RUNS = knob("RUNS", 5, 1)
# Rounds of (slowest bare check, inv health, floor): the per-round spread is wide
# (1.1-1.7x), so a median needs more of them than the other rows. (scripts/bench-cli has
# compiled ops/ first, as scripts/up does: the timings are of a user's every run.)
HEALTH_RUNS = knob("HEALTH_RUNS", 15, 1)


def timed(argv, env, check=True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if check and proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:6])} failed: {proc.stderr.strip()[-300:]}")
    return took


def timed_health(env) -> tuple[float, float]:
    """`inv health --json`: its wall time, and its slowest check's own latency."""
    start = time.perf_counter()
    proc = subprocess.run([*INV, "health", "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: inv health failed:\n{proc.stdout[-1500:]}{proc.stderr[-300:]}")
    return took, max(c["latency_ms"] for c in json.loads(proc.stdout)["checks"]) / 1000


def median(argv, env, runs=RUNS) -> float:
    return statistics.median(timed(argv, env) for _ in range(runs))


def healthcheck_ends(container: str):
    """Yields each time the container's own Docker healthcheck has just ended.

    The broker's healthcheck is the same Erlang CLI as the check being timed: landing in
    a run (a quarter of them, at random) doubles that run's ping. Started right after
    one, a bare check and an `inv health` both fit before the next (10 s later)."""
    def last_end() -> str:
        out = subprocess.run(["docker", "inspect", "--format", "{{json .State.Health.Log}}",
                              container], capture_output=True, text=True, check=True).stdout
        return (json.loads(out) or [{}])[-1].get("End", "")

    seen = last_end()
    while True:
        deadline = time.monotonic() + 60
        while (end := last_end()) == seen:
            if time.monotonic() > deadline:
                sys.exit(f"bench: {container}'s healthcheck did not run for 60 s")
            time.sleep(0.1)
        seen = end
        time.sleep(0.2)  # its exec's teardown
        yield


def main() -> None:
    if "--sandbox" in sys.argv[1:]:
        run_sandbox({**os.environ})
        return
    with bench_stack() as env:
        run_all(env)


def _accepted(container) -> int:
    """SSH logins the sandbox host's sshd has accepted so far (it logs to stderr)."""
    return container.logs().decode(errors="replace").count("Accepted publickey")


def run_sandbox(env) -> None:
    """`inv health --env sandbox` against the same checks run bare over SSH (one `ssh`
    each, the tool an operator would use), and the SSH logins one command costs per
    host. Needs `inv sandbox.up` and `inv deploy --env sandbox` first."""
    import docker

    sys.path.insert(0, str(ROOT))
    from ops import sandbox
    from ops.commands import probes

    sbx = SandboxHosts()
    info, hosts = sbx.info, sbx.hosts
    ps = subprocess.run([*INV, "ps", "--env", "sandbox", "--json"], cwd=ROOT, env=env, text=True,
                        capture_output=True)
    if ps.returncode != 0:
        sys.exit(f"bench: no deployed sandbox ({ps.stderr.strip()[-200:]}): run `inv sandbox.up` "
                 "and `inv deploy --env sandbox` first")
    rows = {r["service"]: r for r in json.loads(ps.stdout)}

    bare_checks, bare_host = {}, {}
    for service, argv in (("app-db", probes.POSTGRES_SELECT_1), ("auth-db", probes.POSTGRES_SELECT_1),
                          ("redis", probes.REDIS_PING), ("rabbitmq", probes.BROKER_PING)):
        task = rows[service]["tasks"][0]
        name = f"ssh + docker exec: {service}"
        bare_checks[name] = sbx.ssh(task["node"], ["docker", "exec", task["container"], *argv.argv])
        bare_host[name] = sbx.role(task["node"])
    bare_host["curl /health/ready (public URL)"] = None
    bare_checks["curl /health/ready (public URL)"] = ["curl", "-fsS", "--cacert", trust_gateway(),
                                                      "-o", "/dev/null", info["url"] + "/health/ready"]
    bare = {name: median(argv, env) for name, argv in bare_checks.items()}
    slowest = max(bare, key=bare.get)
    engine = docker.from_env()
    containers = {role: engine.containers.get(sandbox.container_name(role)) for role in hosts}
    before = {role: _accepted(c) for role, c in containers.items()}
    # The slowest bare check and `inv health` alternate, so that both see the same load
    # on this machine (the sandbox shares its CPUs): the ratio compares like with like.
    health = [*INV, "health", "--env", "sandbox"]
    pairs = [(timed(bare_checks[slowest], env), timed(health, env)) for _ in range(RUNS)]
    bare[slowest] = statistics.median(b for b, _ in pairs)
    t_health = statistics.median(h for _, h in pairs)
    accepted = {role: _accepted(c) - before[role] for role, c in containers.items()}
    # The bare check's own `ssh` logins land on the host that runs the slowest check.
    logins = {role: (n - (RUNS if role == bare_host[slowest] else 0)) / RUNS
              for role, n in accepted.items()}
    # Without the hint of where the broker ran last (a first run, or a moved task): the
    # ping then waits for the manager's state, as before early_probe.
    places = ROOT / ".cache" / "health-places-sandbox.json"
    cold = []
    for _ in range(RUNS):
        places.unlink(missing_ok=True)
        cold.append((timed(bare_checks[slowest], env), timed(health, env)))
    t_cold = statistics.median(h for _, h in cold)
    bare_cold = statistics.median(b for b, _ in cold)
    t_ps = median([*INV, "ps", "--env", "sandbox"], env)
    print(f"\n{'measurement (sandbox)':48} {'median s':>9} {'ratio':>7}  note   (runs: {RUNS})")
    for name, t in bare.items():
        print(f"{'  bare: ' + name:48} {t:9.3f}")
    print(f"{'inv health --env sandbox':48} {t_health:9.3f} {t_health / bare[slowest]:6.2f}x  "
          f"vs slowest bare check ({slowest}), runs alternated; target <= 1.5x; "
          f"bare in sequence {sum(bare.values()):.3f} s; per-pair ratios "
          + " ".join(f"{h / b:.2f}" for b, h in pairs))
    print(f"{'  the same, no hint where the broker ran last':48} {t_cold:9.3f} "
          f"{t_cold / bare_cold:6.2f}x  vs the bare check alternated with it ({bare_cold:.3f} s)")
    print(f"{'inv ps --env sandbox':48} {t_ps:9.3f}")
    print("SSH logins per `inv health --env sandbox`: "
          + ", ".join(f"{role} {n:.1f}" for role, n in sorted(logins.items()))
          + " (target: one per host)")


def run_all(env) -> None:
    project = env["COMPOSE_PROJECT_NAME"]
    compose = ["docker", "compose", "--project-name", project, "--file",
               str(ROOT / "compose/compose.yaml")]
    # Compose needs the same variables inv layers from .env, and the gateway's certificate.
    bare_env = compose_env(env)
    rows = []

    t_list = median([*INV, "--list"], env)
    rows.append(("inv --list", t_list, None, "target <= 0.4 s"))

    def cid(service):
        out = subprocess.run([*compose, "ps", "-q", service], env=bare_env, text=True,
                             capture_output=True, check=True).stdout.split()
        return out[0]

    url = f"https://127.0.0.1:{env['GATEWAY_PORT']}"
    ca = trust_gateway()
    # The same probes inv health runs, each as its own bare command.
    from ops.commands import probes

    bare_checks = {
        "psql SELECT 1 (app-db)": ["docker", "exec", cid("app-db"), *probes.POSTGRES_SELECT_1.argv],
        "psql SELECT 1 (auth-db)": ["docker", "exec", cid("auth-db"), *probes.POSTGRES_SELECT_1.argv],
        "redis-cli PING": ["docker", "exec", cid("redis"), *probes.REDIS_PING.argv],
        "rabbitmq-diagnostics ping": ["docker", "exec", cid("rabbitmq"), *probes.BROKER_PING.argv],
        "api live+ready in container": [
            "docker", "exec", cid("api"), *probes.http_probe(8000, ["/health/live", "/health/ready"]).argv],
        "curl gateway /health/live": ["curl", "-fsS", "--cacert", ca, "-o", "/dev/null",
                                      url + "/health/live"],
        "curl gateway /health/ready": ["curl", "-fsS", "--cacert", ca, "-o", "/dev/null",
                                       url + "/health/ready"],
    }
    bare = {name: median(argv, bare_env) for name, argv in bare_checks.items()}
    slowest_name = max(bare, key=bare.get)
    # Alternated, so that all see the same load on this machine; each round right after
    # the broker's own healthcheck, so that none shares the CPU with it. The floor is the
    # least any `inv` task could cost around the same check: the interpreter, `import
    # invoke` (~0.15 s: it imports unittest.mock and a pure-Python YAML) and the check.
    slowest = bare_checks[slowest_name]
    floor = [sys.executable, "-c", "import invoke, subprocess, sys; "
             f"sys.exit(subprocess.call({slowest!r}, stdout=subprocess.DEVNULL))"]
    rounds, windows = [], healthcheck_ends(cid("rabbitmq"))
    for _ in range(HEALTH_RUNS):
        next(windows)
        rounds.append((timed(slowest, bare_env), timed_health(env), timed(floor, bare_env)))
    bare[slowest_name] = statistics.median(r[0] for r in rounds)
    t_health = statistics.median(r[1][0] for r in rounds)
    t_floor = statistics.median(r[2] for r in rounds)
    inside = statistics.median(r[1][1] for r in rounds)
    for name, t in bare.items():
        rows.append((f"  bare: {name}", t, None, ""))
    rows.append(("inv health (all checks)", t_health, t_health / bare[slowest_name],
                 f"vs slowest bare check ({slowest_name}), {HEALTH_RUNS} rounds alternated "
                 f"after the broker's healthcheck; target <= 1.3x; per-round ratios "
                 + " ".join(f"{h[0] / b:.2f}" for b, h, _ in rounds)))
    rows.append(("  floor: python + import invoke + that check", t_floor,
                 t_floor / bare[slowest_name], "the least any inv task could take around it"))
    rows.append(("  that check inside inv health (its latency)", inside, inside / bare[slowest_name],
                 "slowed by the other checks' execs on the same CPUs"))
    rows.append(("  inv health outside that check", t_health - inside, None,
                 f"interpreter, Invoke, tasks.py, the report; `inv --list` alone {t_list:.3f} s"))

    t_up_bare = median([*compose, "up", "-d", "--wait"], bare_env, runs=3)
    t_up = median([*INV, "up"], env, runs=3)
    rows.append(("docker compose up -d --wait (running stack)", t_up_bare, None, ""))
    rows.append(("inv up (running stack)", t_up, t_up / t_up_bare,
                 f"overhead {t_up - t_up_bare:+.3f} s; target <= 1 s"))

    print(f"\n{'measurement':48} {'median s':>9} {'ratio':>7}  note   (runs: {RUNS})")
    for name, t, ratio, note in rows:
        print(f"{name:48} {t:9.3f} {'' if ratio is None else f'{ratio:6.2f}x':>7}  {note}")


if __name__ == "__main__":
    main()
