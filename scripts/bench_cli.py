"""Timings of `inv --list`, `inv health` and `inv up` next to the bare tools (see bench-cli)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from benchlib import INV, ROOT, SandboxHosts, bench_stack

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def timed(argv, env, check=True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if check and proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:6])} failed: {proc.stderr.strip()[-300:]}")
    return took


def median(argv, env, runs=RUNS) -> float:
    return statistics.median(timed(argv, env) for _ in range(runs))


def in_process_check_phase(env) -> dict:
    """Median wall time of health.run_checks alone, and of its slowest single check."""
    code = (
        "import json,time,statistics\n"
        "from ops import config, health\n"
        "from ops.stack import Stack\n"
        "import invoke.config as ic\n"
        "cfg = ic.Config(project_location='.'); cfg.load_project()\n"
        "s = Stack(config.load(cfg.get('stack', {}), cfg.get('envs', {}), 'local'))\n"
        "m, url = s.model, s.gateway_url()\n"
        "walls, slow = [], []\n"
        f"for _ in range({RUNS}):\n"
        "    t = time.perf_counter(); checks = health.run_checks(m, s.settings.project, url)\n"
        "    walls.append(time.perf_counter() - t)\n"
        "    slow.append(max(c.latency_ms for c in checks) / 1000)\n"
        "print(json.dumps({'wall': statistics.median(walls), 'slowest': statistics.median(slow)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         capture_output=True, check=True).stdout
    return json.loads(out)


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
        bare_checks[name] = sbx.ssh(task["node"], ["docker", "exec", task["container"], *argv])
        bare_host[name] = sbx.role(task["node"])
    bare_host["curl /health/ready (public URL)"] = None
    bare_checks["curl /health/ready (public URL)"] = ["curl", "-fsS", "-o", "/dev/null",
                                                      info["url"] + "/health/ready"]
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
    # Compose needs the same variables inv layers from .env.
    sys.path.insert(0, str(ROOT))
    from ops import config

    bare_env = {**env, **config.read_env_file(ROOT / ".env"),
                "COMPOSE_PROJECT_NAME": project, "GATEWAY_PORT": env["GATEWAY_PORT"]}
    rows = []

    t_list = median([*INV, "--list"], env)
    rows.append(("inv --list", t_list, None, "target <= 0.4 s"))

    def cid(service):
        out = subprocess.run([*compose, "ps", "-q", service], env=bare_env, text=True,
                             capture_output=True, check=True).stdout.split()
        return out[0]

    url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    # The same probes inv health runs, each as its own bare command.
    from ops.commands import probes

    bare_checks = {
        "psql SELECT 1 (app-db)": ["docker", "exec", cid("app-db"), *probes.POSTGRES_SELECT_1],
        "psql SELECT 1 (auth-db)": ["docker", "exec", cid("auth-db"), *probes.POSTGRES_SELECT_1],
        "redis-cli PING": ["docker", "exec", cid("redis"), *probes.REDIS_PING],
        "rabbitmq-diagnostics ping": ["docker", "exec", cid("rabbitmq"), *probes.BROKER_PING],
        "api live+ready in container": [
            "docker", "exec", cid("api"), *probes.http_probe(8000, ["/health/live", "/health/ready"])],
        "curl gateway /health/live": ["curl", "-fsS", "-o", "/dev/null", url + "/health/live"],
        "curl gateway /health/ready": ["curl", "-fsS", "-o", "/dev/null", url + "/health/ready"],
    }
    bare = {name: median(argv, bare_env) for name, argv in bare_checks.items()}
    slowest_name = max(bare, key=bare.get)
    # Alternated, so that both see the same load on this machine.
    pairs = [(timed(bare_checks[slowest_name], bare_env), timed([*INV, "health"], env))
             for _ in range(RUNS)]
    bare[slowest_name] = statistics.median(b for b, _ in pairs)
    t_health = statistics.median(h for _, h in pairs)
    for name, t in bare.items():
        rows.append((f"  bare: {name}", t, None, ""))
    rows.append(("inv health (all checks)", t_health, t_health / bare[slowest_name],
                 f"vs slowest bare check ({slowest_name}), runs alternated; target <= 1.3x; "
                 f"bare checks in sequence: {sum(bare.values()):.3f} s"))
    # Where the time goes: the concurrent check phase vs the process's fixed cost.
    phase = in_process_check_phase(env)
    rows.append(("  inv health: check phase only (in process)", phase["wall"],
                 phase["wall"] / phase["slowest"],
                 f"vs its slowest check ({phase['slowest']:.3f} s): concurrency cost"))
    rows.append(("  inv health: fixed cost (interpreter, imports)", t_health - phase["wall"],
                 None, f"of which `inv --list` (interpreter, Invoke, tasks.py): {t_list:.3f} s"))

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
