"""bench-images: `inv images.deliver --env sandbox` (every node at once, only the layers
a node lacks) against the bare tool an operator would script, `docker save IMAGE | ssh
NODE docker load` for each node in turn, and against the same pipes run on all nodes at
once, alternated in one run on this checkout's sandbox (`inv sandbox.up`).

Before each run the image is removed from every node, so each run delivers it whole
(minus the layers a node keeps from other images). Default image: the monitoring image
of .env (large, and not run by the deployed stack unless monitoring is up: an image
that runs on a node is refused)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from benchlib import INV, QUICK, ROOT, SandboxHosts

sys.path.insert(0, str(ROOT))
from ops.commands import image_refs as images_cmd  # noqa: E402
from ops.config import read_env_file  # noqa: E402


def timed(argv_or_fn) -> float:
    started = time.perf_counter()
    if callable(argv_or_fn):
        argv_or_fn()
    else:
        r = subprocess.run(argv_or_fn, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bench: {' '.join(argv_or_fn)} failed: {r.stderr.strip()[-800:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=read_env_file(ROOT / ".env").get("PROMETHEUS_IMAGE")
                        or "ops-local/prometheus:2.42")
    parser.add_argument("--runs", type=int, default=1 if QUICK else 3)
    args = parser.parse_args()
    if args.runs < 1:
        sys.exit(f"bench: --runs must be at least 1, not {args.runs}")
    name, _, tag = args.image.rpartition(":")
    try:  # the name goes into commands run on the nodes
        images_cmd.reference(name, tag)
    except ValueError as exc:
        sys.exit(f"bench: --image: {exc}")
    sbx = SandboxHosts()
    nodes = [h["name"] for h in sbx.info["hosts"]]
    image = args.image

    for name in nodes:  # removing an image in use would untag what runs
        used = subprocess.run(sbx.ssh(name, f"docker ps -q --filter ancestor={image}"),
                              capture_output=True, text=True, check=True).stdout.strip()
        if used:
            sys.exit(f"bench: {image} runs on {name} (monitoring up?): pick another --image")

    def forget() -> None:  # the image off every node (its layers too, unless shared)
        for name in nodes:
            subprocess.run(sbx.ssh(name, f"docker rmi -f {image} >/dev/null 2>&1; true"),
                           check=True, capture_output=True)

    def pipe(name: str) -> tuple[subprocess.Popen, subprocess.Popen]:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.Popen(sbx.ssh(name, "docker load -q"), stdin=save.stdout,
                                stdout=subprocess.DEVNULL)
        save.stdout.close()
        return load, save

    def bare(parallel: bool) -> None:
        running = []
        for name in nodes:
            running.append(pipe(name))
            if not parallel:
                for p in running.pop():
                    assert p.wait() == 0, "bare docker save | ssh docker load failed"
        for pair in running:
            for p in pair:
                assert p.wait() == 0, "bare docker save | ssh docker load failed"

    ours = [*INV, "images.deliver", "--env", "sandbox", "--image", image]
    rows: dict[str, list[float]] = {"bare, one node after another": [], "bare, all nodes at once": [],
                                    "inv images.deliver": []}
    print(f"bench: {image} to {len(nodes)} nodes, {args.runs} alternated runs", file=sys.stderr)
    try:
        for _ in range(args.runs):
            for label, run in (("bare, one node after another", lambda: bare(False)),
                               ("bare, all nodes at once", lambda: bare(True)),
                               ("inv images.deliver", ours)):
                forget()
                rows[label].append(timed(run))
    finally:
        forget()  # as it found them: the image on no node
    base = statistics.median(rows["bare, one node after another"])
    for label, times in rows.items():
        median = statistics.median(times)
        print(f"{label:32} {median:7.2f} s  {median / base:5.2f}x  "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")


if __name__ == "__main__":
    main()
