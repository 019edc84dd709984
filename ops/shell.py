"""Runs a process on this machine: argv lists, or a `commands.line.Line` (its own argv
when it is one plain command, else `sh -c` its text: never a string split here). A
timeout or Ctrl-C ends the whole process tree, not only the first process: the docker
CLI runs Compose as a plugin process of its own, which would otherwise live on.
(A node's processes run through ops.runtime; pipelines of stages through ops.containers.)"""

from __future__ import annotations

import functools
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import OpsError


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _argv(command) -> list[str]:
    from .commands.line import Line, words

    return command.argv if isinstance(command, Line) else words(command)


def display(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def docker_problem(stderr: str) -> str | None:
    """Recognise an environment problem (not a command failure) in docker's stderr."""
    text = stderr.lower()
    if "cannot connect to the docker daemon" in text or "is the docker daemon running" in text:
        return "Docker engine not reachable: is dockerd running? (scripts/up installs and starts it)"
    if "permission denied" in text and "docker.sock" in text:
        return "no permission on the Docker socket: run as root or join the docker group"
    if "'compose' is not a docker command" in text or "unknown command: docker compose" in text:
        return ("Docker Compose v2 plugin missing: `docker compose` does not work "
                "(scripts/up installs it)")
    return None


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@functools.cache
def compose_program() -> tuple[str, ...]:
    """Compose's plugin binary run standalone (Compose v2 supports it: `docker-compose
    config ...`), where one is installed: for `docker compose config`, which needs no
    engine, the docker CLI's own start-up is half the time (0.07 -> 0.04 s idle, more
    under load). Else `docker compose`; and so without a docker CLI on PATH, whatever
    plugin is left on disk: Compose is what `docker compose` runs."""
    import shutil

    if shutil.which("docker") is None:
        return ("docker", "compose")
    for folder in (Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins",
                   Path("/usr/local/lib/docker/cli-plugins"), Path("/usr/local/libexec/docker/cli-plugins"),
                   Path("/usr/lib/docker/cli-plugins"), Path("/usr/libexec/docker/cli-plugins")):
        plugin = folder / "docker-compose"
        if plugin.is_file() and os.access(plugin, os.X_OK):
            return (str(plugin),)
    return ("docker", "compose")


def end_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """`sig` to `proc` and every process below it, whatever their process group (a
    docker CLI plugin may run in one of its own). The tree is frozen first (SIGSTOP,
    read again until no new process appears): a process that forks between the read and
    the signal would escape, and an orphan is re-parented where it can no longer be
    found."""
    from .localrun import descendants

    tree: list[int] = []
    for _ in range(10):
        found = [p for p in [proc.pid, *descendants(proc.pid)] if p not in tree]
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        tree += found
    for pid in tree:
        _signal(pid, sig)
        if sig != signal.SIGKILL:
            _signal(pid, signal.SIGCONT)  # a stopped process acts on its signal once resumed


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _exec(argv, env, stream, timeout, input):
    """Like subprocess.run, but a timeout ends the whole tree. A captured command runs
    in a process group of its own (a terminal's Ctrl-C reaches this process, which ends
    the tree); a streamed one stays in ours, since it may read the terminal."""
    try:
        proc = subprocess.Popen(
            argv, env=dict(env) if env is not None else None, text=True,
            stdin=subprocess.PIPE if input is not None else None,
            stdout=None if stream else subprocess.PIPE,
            stderr=None if stream else subprocess.PIPE,
            process_group=None if stream else 0,
        )
    except FileNotFoundError as exc:
        raise OpsError(f"{argv[0]}: command not found (scripts/up installs what is needed)") from exc
    with proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            end_tree(proc)
            proc.communicate()
            raise
        except BaseException:  # Ctrl-C, or this process ending: never leave the tree
            end_tree(proc, signal.SIGINT)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                end_tree(proc)
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def diagnose_docker(env: Mapping[str, str] | None = None) -> str | None:
    """After a streamed docker command failed: was it the environment? (cheap probes)"""
    from .commands import docker

    for probe in (docker.engine_version().argv, docker.compose_version().argv):
        proc = _exec(probe, env, False, 20, None)
        if proc.returncode != 0:
            return docker_problem(proc.stderr) or f"{display(probe)} failed: {last_line(proc.stderr)}"
    return None


def run(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    stream: bool = False,
    check: bool = True,
    what: str | None = None,
    timeout: float | None = None,
    input: str | None = None,
) -> Result:
    """Run argv; capture its output, or with stream=True let it go to the terminal.

    check=True turns a non-zero exit into an OpsError naming `what` (or the command) and
    the last line of stderr; a docker environment problem (engine down, Compose plugin
    missing) is reported as such instead.
    """
    argv = _argv(argv)
    try:
        proc = _exec(argv, env, stream, timeout, input)
    except subprocess.TimeoutExpired as exc:
        raise OpsError(f"{what or display(argv)}: timed out after {timeout:.0f}s") from exc
    result = Result(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")
    if result.ok:
        return result
    if argv[0] == "docker":
        problem = docker_problem(result.stderr) if not stream else diagnose_docker(env)
        if problem:
            raise OpsError(problem)
    if check:
        detail = last_line(result.stderr) or ("see output above" if stream else "no error output")
        raise OpsError(f"{what or display(argv)} failed (exit {result.returncode}): {detail}")
    return result


def read_lines(argv: Sequence[str], consume, env: Mapping[str, str] | None = None,
               what: str | None = None):
    """Run argv and hand its stdout to consume(lines) as it comes (constant memory, for
    output too big to capture, e.g. a stack's whole logs); return consume's result.
    A non-zero exit is an OpsError like run()'s."""
    import tempfile

    argv = _argv(argv)
    with tempfile.TemporaryFile(mode="w+") as err:
        try:
            proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, text=True,
                                    stdout=subprocess.PIPE, stderr=err, errors="replace")
        except FileNotFoundError as exc:
            raise OpsError(f"{argv[0]}: command not found (scripts/up installs what is needed)") from exc
        with proc:
            result = consume(proc.stdout)
            proc.stdout.read()  # whatever consume left: let the command finish
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        problem = docker_problem(stderr) if argv[0] == "docker" else None
        raise OpsError(problem or f"{what or display(argv)} failed (exit {proc.returncode}): "
                       f"{last_line(stderr) or 'no error output'}")
    return result
