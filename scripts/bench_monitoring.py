"""Fault-to-notification and monitoring overhead (see bench-monitoring).

Fault: Redis is stopped at t0. Prometheus keeps every raw sample with its own timestamp,
so after the webhook call the phases are read back from it: the first scraped
`redis_up 0` (scrape), the first ALERTS sample `pending` (rule evaluation), the first
`firing` (the rule's `for`), and the receiver's clock (Alertmanager's group_wait and
delivery). Throughput: closed-loop GETs of /health/live through the gateway (the path
the rate limit leaves alone), monitoring containers running vs `docker pause`d, in
alternating rounds so drift hits both sides alike."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time

import docker
import requests
from benchlib import INV, ROOT, bench_stack, knob

sys.path.insert(0, str(ROOT))
from tests.support.receiver import Receiver  # noqa: E402 - after the checkout is importable

FAULTS = knob("FAULTS", 3, 1)
ROUNDS = knob("ROUNDS", 3, 1)
SECONDS = knob("SECONDS", 10.0, 2.0)
CLIENTS = knob("CLIENTS", 16, 4)
# Alertmanager drops a group some 30 s after its resolved notice; a fault before that
# joins the old group and waits for its group_interval instead of group_wait.
SETTLE = knob("SETTLE", 45.0, 5.0)


def inv(*args, env) -> None:
    proc = subprocess.run([*INV, *args], cwd=ROOT, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"bench: inv {' '.join(args)} failed: {proc.stderr.strip()[-300:]}")


def prometheus(env) -> str:
    out = subprocess.run(["docker", "compose", "-p", env["COMPOSE_PROJECT_NAME"], "port",
                          "prometheus", "9090"], text=True, capture_output=True, check=True)
    return "http://" + out.stdout.strip().replace("0.0.0.0:", "127.0.0.1:")


def samples(prom: str, selector: str, since: float) -> list[tuple[float, dict, float]]:
    """Raw samples of `selector` since `since`: (timestamp, labels, value)."""
    window = int(time.time() - since) + 30
    answer = requests.get(f"{prom}/api/v1/query", timeout=10, params={
        "query": f"{selector}[{window}s]"}).json()
    return sorted((float(t), r["metric"], float(v)) for r in answer["data"]["result"]
                  for t, v in r["values"] if float(t) >= since)


def fault_once(env, engine, receiver: Receiver, prom: str) -> dict:
    project = env["COMPOSE_PROJECT_NAME"]
    redis = engine.containers.list(filters={"label": [f"com.docker.compose.project={project}",
                                                      "com.docker.compose.service=redis"]})[0]
    t0 = time.time()
    redis.stop(timeout=10)
    notified, _ = receiver.wait_for("RedisDown", "firing", after=t0, timeout=300)
    down = [t for t, _, v in samples(prom, "redis_up", t0) if v == 0]
    alerts = samples(prom, 'ALERTS{alertname="RedisDown"}', t0)
    pending = [t for t, m, _ in alerts if m.get("alertstate") == "pending"]
    firing = [t for t, m, _ in alerts if m.get("alertstate") == "firing"]
    redis.start()
    receiver.wait_for("RedisDown", "resolved", after=notified, timeout=300)
    time.sleep(SETTLE)
    # Zero `for`: the rule fires at its first evaluation, never pending.
    first_eval = pending[0] if pending else firing[0]
    return {"scrape": down[0] - t0, "evaluation": first_eval - down[0],
            "for": firing[0] - first_eval, "alertmanager": notified - firing[0],
            "total": notified - t0}


def throughput(url: str, seconds: float) -> float:
    """Requests per second answered 200, CLIENTS threads back to back."""
    stop = time.monotonic() + seconds
    counts = [0] * CLIENTS

    def client(i: int) -> None:
        s = requests.Session()
        while time.monotonic() < stop:
            try:
                if s.get(url, timeout=5).status_code == 200:
                    counts[i] += 1
            except requests.RequestException:
                pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def overhead(env, engine) -> tuple[list[float], list[float]]:
    project = env["COMPOSE_PROJECT_NAME"]
    monitoring = engine.containers.list(filters={"label": [
        f"com.docker.compose.project={project}", "ops.role=monitoring"]})
    url = f"https://127.0.0.1:{env['GATEWAY_PORT']}/health/live"
    throughput(url, 3)  # warm up
    on, off = [], []
    for _ in range(ROUNDS):
        for c in monitoring:
            c.pause()
        time.sleep(1)
        off.append(throughput(url, SECONDS))
        for c in monitoring:
            c.unpause()
        time.sleep(3)  # let Prometheus catch up with the scrapes it missed
        on.append(throughput(url, SECONDS))
    return on, off


def main() -> None:
    engine = docker.from_env()
    receiver = Receiver()
    with bench_stack(ALERT_WEBHOOK_URL=receiver.url) as env:
        inv("monitoring.up", env=env)
        try:
            prom = prometheus(env)
            cfg = requests.get(f"{prom}/api/v1/status/config", timeout=10).json()["data"]["yaml"]
            intervals = [ln.strip() for ln in cfg.splitlines()
                         if ln.strip().startswith(("scrape_interval:", "evaluation_interval:"))][:2]
            rule = [r for g in requests.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]
                    ["groups"] for r in g["rules"] if r["name"] == "RedisDown"][0]
            intervals.append(f"RedisDown for: {rule['duration']:g}s")
            print(f"monitoring with default intervals ({', '.join(intervals)})")
            time.sleep(20)  # every target scraped at least once
            runs = [fault_once(env, engine, receiver, prom) for _ in range(FAULTS)]
            print(f"fault -> webhook, Redis stopped, {FAULTS} runs {SETTLE:g}s apart (median; max):")
            for phase in ("scrape", "evaluation", "for", "alertmanager", "total"):
                values = [r[phase] for r in runs]
                print(f"  {phase:13} {statistics.median(values):6.1f} s  ({max(values):.1f})")
            total = max(r["total"] for r in runs)
            print(f"  worst fault-to-notification {total:.1f} s (target <= 60 s): "
                  f"{'met' if total <= 60 else 'NOT met'}")
            on, off = overhead(env, engine)
            ratio = statistics.median(on) / statistics.median(off)
            print(f"api throughput through the gateway, {CLIENTS} clients, {ROUNDS}x{SECONDS:g}s:")
            print(f"  monitoring paused   {statistics.median(off):7.0f} req/s  "
                  f"({', '.join(f'{x:.0f}' for x in off)})")
            print(f"  monitoring running  {statistics.median(on):7.0f} req/s  "
                  f"({', '.join(f'{x:.0f}' for x in on)})")
            print(f"  overhead {1 - ratio:+.1%} (target <= 5%): "
                  f"{'met' if 1 - ratio <= 0.05 else 'NOT met'}")
        finally:
            for c in engine.containers.list(filters={"status": "paused", "label": [
                    f"com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"]}):
                c.unpause()
            subprocess.run([*INV, "monitoring.down"], cwd=ROOT, env=env,
                           capture_output=True)
            receiver.close()


if __name__ == "__main__":
    main()
