"""compose-lint and `inv audit` on the same compose files: for each file, the findings
per rule of each tool, which topics both report (and on which services), and what only
one of them sees; then one summary table (markdown) over all files.

Then the time of each, as a user runs them (the CLI, median of 5), on one stack and on a
generated stack of 500 services; targets: inv audit at most 2x compose-lint on one stack,
at most 1x on 500 services.

Usage: scripts/audit-compare [--no-timing] [COMPOSE_FILE...]   (default: the example stacks)
AUDIT_COMPARE_RUNS (default 5) and AUDIT_COMPARE_SERVICES (default 500): a quick mode.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ops.audit.load import ComposeFiles, audit  # noqa: E402
from ops.audit.rules import RULES  # noqa: E402

RUNS = int(os.environ.get("AUDIT_COMPARE_RUNS", "5"))
SERVICES = int(os.environ.get("AUDIT_COMPARE_SERVICES", "500"))
EXAMPLES = sorted((ROOT / "tests" / "fixtures" / "audit" / "examples").glob("*/compose.yaml"))
# compose-lint rule -> the inv audit rule on the same topic.
SAME_TOPIC = {
    "CL-0001": "OA205",  # docker socket
    "CL-0002": "OA204",  # privileged
    "CL-0003": "OA208",  # no-new-privileges
    "CL-0004": "OA114",  # image not pinned
    "CL-0005": "OA203",  # ports on all interfaces (inv audit: OA203 the data tier's, OA211 others)
    "CL-0008": "OA206",  # host network
    "CL-0010": "OA206",  # host pid/ipc
    "CL-0011": "OA207",  # dangerous cap_add (and the finer-grained capability rules)
    "CL-0024": "OA207", "CL-0028": "OA207", "CL-0029": "OA207", "CL-0030": "OA207",
    "CL-0014": "OA403",  # logging disabled
    "CL-0018": "OA209",  # root
    "CL-0020": "OA201",  # credentials in env
    "CL-0021": "OA202",  # connection-string credentials
    "CL-0026": "OA105",  # resource limits
}


def compose_lint(path: Path) -> list[dict]:
    exe = Path(sys.executable).parent / "compose-lint"
    proc = subprocess.run([str(exe), "check", "--format", "json", "--allow-partial-coverage",
                           "--no-pager", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"compose-lint failed on {path} (exit {proc.returncode}): "
                         f"{proc.stderr.strip().splitlines()[-1:] or ''}")
    return [f for f in json.loads(proc.stdout)["findings"] if not f.get("suppressed")]


def ours(path: Path) -> tuple[list, int]:
    result = audit([ComposeFiles([path])], [], None, ROOT)
    compose = [f for f in result.active() if f.file.endswith(path.name)]
    return compose, len(result.active()) - len(compose)


# compose-lint files a password inside a DSN under either of its credential rules:
# literal credentials and connection strings count as one topic.
ONE_TOPIC = {"OA202": "OA201", "OA211": "OA203"}


def topic(rule: str) -> str:
    rule = SAME_TOPIC.get(rule, rule)
    return ONE_TOPIC.get(rule, rule)


def compare(path: Path) -> dict:
    cl = compose_lint(path)
    oa, in_dockerfiles = ours(path)
    cl_pairs = {(topic(f["rule_id"]), f.get("service") or "") for f in cl}
    oa_pairs = {(topic(f.rule), f.service) for f in oa}
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"\n== {shown}")
    print(f"   compose-lint: {len(cl)} finding(s), {len({f['rule_id'] for f in cl})} rule(s); "
          f"inv audit: {len(oa)} in the compose file, {len({f.rule for f in oa})} rule(s)"
          f" (+{in_dockerfiles} in its Dockerfiles, which compose-lint does not read)")
    both = Counter(t for t, _ in cl_pairs & oa_pairs)
    if both:
        print("   both report (same topic, same service):")
        for t, n in sorted(both.items()):
            cl_ids = sorted({k for k, v in SAME_TOPIC.items() if v == t})
            print(f"     {'/'.join(cl_ids)} = {t} {RULES[t].title}: {n} service(s)")
    only_cl = Counter(f["rule_id"] for f in cl if (topic(f["rule_id"]), f.get("service") or "")
                      not in oa_pairs)
    only_oa = Counter(f.rule for f in oa if (topic(f.rule), f.service) not in cl_pairs)
    print("   only compose-lint:")
    for rule, n in sorted(only_cl.items()):
        title = next(f["message"] for f in cl if f["rule_id"] == rule).split(".")[0][:70]
        print(f"     {rule} x{n}  {title}")
    print("   only inv audit:")
    for rule, n in sorted(only_oa.items()):
        print(f"     {rule} x{n}  {RULES[rule].title} ({RULES[rule].severity})")
    return {"stack": str(shown), "cl": len(cl), "cl_rules": len({f["rule_id"] for f in cl}),
            "oa": len(oa), "oa_rules": len({f.rule for f in oa}), "both": sum(both.values()),
            "only_cl": sorted(only_cl), "only_oa": sorted(only_oa)}


def _median_run(argv: list[str], runs: int = RUNS) -> float:
    def once() -> float:
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        took = time.perf_counter() - start
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv[:3])} failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-300:]}")
        return took
    return statistics.median(once() for _ in range(runs))


def big_stack(path: Path, services: int = SERVICES) -> Path:
    """A stack of `services` app services, each as a team would write one."""
    lines = ["services:"]
    for i in range(services):
        lines += [f"  svc{i}:", f"    image: example/svc{i}:1.{i}.0", "    restart: unless-stopped",
                  "    environment:", "      LOG_LEVEL: info", f"      DB_URL: ${{DB_URL_{i}}}",
                  f"    ports: [\"127.0.0.1:{10000 + i}:8000\"]",
                  "    healthcheck:", "      test: [\"CMD\", \"true\"]",
                  "    deploy:", "      resources:", "        limits: {cpus: \"0.5\", memory: 128M}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def timing(one: Path) -> None:
    """Each tool's CLI on one stack and on 500 services, alternated, in one run."""
    inv = [sys.executable, "-m", "invoke", "-r", str(ROOT), "audit", "--format", "json", "-p"]
    lint = [str(Path(sys.executable).parent / "compose-lint"), "check", "--format", "json",
            "--allow-partial-coverage", "--no-pager"]
    with tempfile.TemporaryDirectory() as tmp:
        big = big_stack(Path(tmp) / "compose.yaml")
        print("\n| stack | compose-lint (s) | inv audit (s) | ratio | target |")
        print("|---|---|---|---|---|")
        for label, path, target in ((str(one.relative_to(ROOT)), one, 2.0),
                                    (f"{SERVICES} services (generated)", big, 1.0)):
            t_lint = _median_run([*lint, str(path)])
            t_ours = _median_run([*inv, str(path)])
            ratio = t_ours / t_lint
            print(f"| {label} | {t_lint:.3f} | {t_ours:.3f} | {ratio:.2f}x | <= {target:.0f}x "
                  f"{'(met)' if ratio <= target else '(NOT met)'} |")


def main(argv: list[str]) -> int:
    timed = "--no-timing" not in argv
    argv = [a for a in argv if a != "--no-timing"]
    paths = [Path(a).resolve() for a in argv] or EXAMPLES
    rows = [compare(p) for p in paths]
    print("\n| stack | compose-lint findings (rules) | inv audit findings (rules) | "
          "same topic+service | only compose-lint | only inv audit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stack']} | {r['cl']} ({r['cl_rules']}) | {r['oa']} ({r['oa_rules']}) | "
              f"{r['both']} | {', '.join(r['only_cl']) or '-'} | {', '.join(r['only_oa']) or '-'} |")
    if timed:
        timing(paths[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
