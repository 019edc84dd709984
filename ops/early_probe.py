"""Slow probes started on a guess, before the state that names their container is read.

The broker's ping boots an Erlang VM (~1.2 s, the slowest check by far). Started while
`inv health` still imports, connects and reads the stack's state, it no longer waits
for them. A guess (the container the probe ran in) counts only when the state read
afterwards names that same container and the probe passed; otherwise the probe runs
again the normal way. A wrong guess costs time, never a false failure, nor a pass from
another container.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

Verdict = tuple[bool, str]


class Early:
    """One probe already running in `container`; `wait()` gives its verdict."""

    def __init__(self, container: str, wait: Callable[[], Verdict], stop=None):
        self.container = container
        self.started = time.perf_counter()
        self._wait, self._stop = wait, stop
        self.used = False

    def job(self, container: str, probe_again: Callable[[], Verdict]):
        """The check's callable: this probe's verdict if it ran in `container` and
        passed, else `probe_again()`. Its `started` makes the reported latency the
        probe's own, not the wait for it."""
        def run() -> Verdict:
            if container == self.container:
                self.used = True
                verdict = self._wait()
                if verdict[0]:
                    return verdict
            return probe_again()

        run.started = self.started
        return run

    def close(self) -> None:
        """Stop a probe nobody waited for (a guess the state did not confirm)."""
        if not self.used and self._stop is not None:
            self._stop()


def in_thread(container: str, fn: Callable[[], Verdict]) -> Early:
    """Run `fn` (a probe over SSH, say) in a thread of its own from now on."""
    future: Future = Future()

    def work():
        try:
            future.set_result(fn())
        except Exception as exc:  # noqa: BLE001 - a failed guess is probed again
            future.set_result((False, f"{type(exc).__name__}: {exc}"))

    threading.Thread(target=work, name=f"early-{container[:12]}", daemon=True).start()
    return Early(container, future.result)


def sdk_engine_env(environ) -> dict:
    """The CLI's environment, pointed at the engine the docker SDK reads (DOCKER_HOST, else
    the local socket): a CLI context elsewhere must not answer for the SDK's containers."""
    env = {k: v for k, v in environ.items() if k != "DOCKER_CONTEXT"}
    env["DOCKER_HOST"] = environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return env


def docker_cli(container: str, argv: list[str], verdict: Callable[[int, str], Verdict],
               timeout: float = 30.0) -> Early:
    """`docker exec` through the CLI: it starts before the docker SDK is even imported
    (the Engine's exec is the same either way)."""
    from .commands import docker
    from .runtime.runner import LOCAL

    proc = LOCAL.popen(docker.exec_in(container, argv).argv, subprocess.DEVNULL, subprocess.PIPE,
                       subprocess.STDOUT, env=sdk_engine_env(os.environ), own_group=True)

    def wait() -> Verdict:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            LOCAL.end(proc)
            proc.communicate()
            return False, f"no answer in {timeout:.0f} s"
        return verdict(proc.returncode, out.decode(errors="replace"))

    def stop():
        if proc.poll() is None:
            LOCAL.end(proc)
        proc.communicate()

    return Early(container, wait, stop)


# -- where the last run found them (Swarm tasks' containers are not named in advance) ----
def load_places(path: Path) -> list[dict]:
    """[{"host", "container", "role"}] where the last run found the slow probes' tasks;
    [] when there is no such file or it is not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [p for p in data if isinstance(p, dict)
            and all(isinstance(p.get(k), str) for k in ("host", "container", "role"))]


def save_places(path: Path, places: list[dict]) -> None:
    """A hint, not a record: replaced whole (a reader never sees half), not fsynced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(places, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only checkout loses the head start, nothing else
