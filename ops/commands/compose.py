"""`docker compose` commands (`line.Line`s with their argv: run without a shell). User-given
names always follow `--`-free positions that Compose treats as service names, and are
validated before they get here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .line import Line, cmd

DOCKER_COMPOSE = ("docker", "compose")


def base(project: str | None, files: Sequence[Path], project_directory: Path | None = None,
         profiles: Sequence[str] = (), program: Sequence[str] = DOCKER_COMPOSE) -> Line:
    """`project` None: Compose names it (from the directory, or the file's `name:`).
    `program`: how Compose is started: through the docker CLI, or its plugin binary
    itself (shell.compose_program: the same Compose, without the CLI's own start-up)."""
    argv = [*program]
    for profile in profiles:
        argv += ["--profile", profile]
    if project:
        argv += ["--project-name", project]
    if project_directory is not None:
        argv += ["--project-directory", str(project_directory)]
    for f in files:
        argv += ["--file", str(f)]
    return cmd(*argv)


def config_json(b: Line, interpolate: bool = True) -> Line:
    """The resolved model as JSON; `interpolate=False`: variables left as written."""
    return b.plus("config", "--format", "json", *([] if interpolate else ["--no-interpolate"]))


def up(b: Line, *, build: bool = False, wait_timeout: int | None = None,
       services: Sequence[str] = (), scale: Mapping[str, int] | None = None,
       no_deps: bool = False, no_recreate: bool = False) -> Line:
    argv = ["up", "--detach", "--remove-orphans"]
    if build:
        argv.append("--build")
    if wait_timeout is not None:
        argv += ["--wait", "--wait-timeout", str(int(wait_timeout))]
    if no_deps:
        argv.append("--no-deps")
    if no_recreate:
        argv.append("--no-recreate")
    for service, count in sorted((scale or {}).items()):
        argv += ["--scale", f"{service}={count}"]
    return b.plus(*argv, *services)


def down(b: Line, *, volumes: bool = False, rmi_local: bool = False) -> Line:
    argv = ["down", "--remove-orphans"]
    if volumes:
        argv.append("--volumes")
    if rmi_local:
        argv += ["--rmi", "local"]
    return b.plus(*argv)


def stop_rm(b: Line, services: Sequence[str]) -> Line:
    """Stop and remove some services' containers (their volumes stay)."""
    return b.plus("rm", "--stop", "--force", *services)


def port(b: Line, service: str, container_port: int) -> Line:
    return b.plus("port", service, str(container_port))


def ps(b: Line) -> Line:
    return b.plus("ps", "--all", "--format", "json")


def log_flags(follow: bool = False, tail: str | None = None, since: str | None = None,
              timestamps: bool = False) -> list[str]:
    """The options `docker compose logs` and `docker service logs` share."""
    argv = ["--follow"] if follow else []
    if tail is not None:
        argv += ["--tail", str(tail)]
    if since:
        argv += ["--since", since]
    return argv + (["--timestamps"] if timestamps else [])


def logs(b: Line, services: Sequence[str] = (), *, follow: bool = False,
         tail: str | None = None, since: str | None = None, timestamps: bool = False) -> Line:
    return b.plus("logs", "--no-color", *log_flags(follow, tail, since, timestamps), *services)


def build(b: Line, services: Sequence[str] = (), *, pull: bool = False,
          no_cache: bool = False) -> Line:
    argv = ["build"]
    if pull:
        argv.append("--pull")
    if no_cache:
        argv.append("--no-cache")
    return b.plus(*argv, *services)


def exec_(b: Line, service: str, command: Sequence[str], *, index: int = 1,
          tty: bool = False) -> Line:
    argv = ["exec"]
    if not tty:
        argv.append("-T")
    if index != 1:
        argv += ["--index", str(index)]
    return b.plus(*argv, service, *command)


def run_once(b: Line, service: str, command: Sequence[str]) -> Line:
    """A one-off container of `service` (its image, environment, secrets and networks),
    removed when it exits. Its dependencies are not started: `inv up` brings up what the
    app needs first, within its health budget; on a stopped stack it fails to connect."""
    return b.plus("run", "--rm", "-T", "--no-deps", "--quiet-pull", service, *command)
