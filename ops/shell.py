"""Runs a process on this machine: argv lists, or a `commands.line.Line` (its own argv
when it is one plain command, else `sh -c` its text: never a string split here). A
timeout or Ctrl-C ends the whole process tree, not only the first process: the docker
CLI runs Compose as a plugin process of its own, which would otherwise live on.
The processes themselves run through `ops.runtime.runner.LOCAL`, the runner every host
has; this module adds what this machine's docker CLI needs (its environment problems
recognised, output streamed to the terminal, read line by line)."""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import OpsError
from .runtime.runner import Result, end_tree, last_line  # noqa: F401 - this module's API


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


def _exec(argv, env, stream, timeout, input, what=None) -> Result:
    """This machine's runner (ops.runtime.runner.LOCAL): captured, or attached to the
    terminal. A timeout raises OpsError; the tree ended, whatever happens."""
    from .runtime.runner import LOCAL

    if stream and input is None:
        return LOCAL.attached(argv, tty=True, env=env)
    return LOCAL.run(argv, what or display(argv), check=False, input=input, timeout=timeout, env=env)


def diagnose_docker(env: Mapping[str, str] | None = None) -> str | None:
    """After a streamed docker command failed: was it the environment? (cheap probes)"""
    from .commands import docker

    for probe in (docker.engine_version().argv, docker.compose_version().argv):
        proc = _exec(probe, env, False, 20, None)
        if not proc.ok:
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
    result = _exec(argv, env, stream, timeout, input, what)
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
    import io
    import tempfile

    from .runtime.runner import LOCAL

    argv = _argv(argv)
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = LOCAL.popen(argv, subprocess.DEVNULL, subprocess.PIPE, err, env=env)
        with proc, io.TextIOWrapper(proc.stdout, errors="replace") as lines:
            try:
                result = consume(lines)
                lines.read()  # whatever consume left: let the command finish
            except BaseException:
                LOCAL.end(proc)
                raise
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        problem = docker_problem(stderr) if argv[0] == "docker" else None
        raise OpsError(problem or f"{what or display(argv)} failed (exit {proc.returncode}): "
                       f"{last_line(stderr) or 'no error output'}")
    return result
