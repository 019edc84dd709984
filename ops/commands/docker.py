"""The docker CLI's own commands, one builder each (pure; each returns a Line whose
`.argv` a local process, a Stage or a node's connection runs). Compose, Swarm and
image-reference builders have modules of their own."""

from __future__ import annotations

from .line import Line, cmd, words


def exec_in(container: str, argv, stdin: bool = False, user: str | None = None) -> Line:
    """`docker exec` of argv in a running container (`-i` when stdin is fed), as `user`
    when given (one word: --user=NAME, as program_of reads it)."""
    return cmd("docker", "exec", *(["-i"] if stdin else []), *([f"--user={user}"] if user else []),
               container, *words(argv))


def program_of(argv) -> str:
    """The program an argv runs: the one inside `docker exec`, else its first word."""
    argv = list(argv)
    if argv[:2] == ["docker", "exec"]:
        rest = [a for a in argv[2:] if not a.startswith("-")]
        return rest[1] if len(rest) > 1 else "docker exec"
    return argv[0]


def build(tag: str, context: str, **build_args: str) -> Line:
    return cmd("docker", "build", "--quiet", "--tag", tag,
               *[w for k, v in build_args.items() for w in ("--build-arg", f"{k}={v}")], context)


def import_tarball(path: str, image: str) -> Line:
    return cmd("docker", "import", path, image)


def pull(image: str) -> Line:
    return cmd("docker", "pull", "--quiet", image)


def login(server: str, user: str) -> Line:
    """The password goes on stdin, never on the command line."""
    return cmd("docker", "login", "--username", user, "--password-stdin", server)


def push(image: str) -> Line:
    return cmd("docker", "push", "--quiet", image)


def image_rm(image: str) -> Line:
    return cmd("docker", "image", "rm", image)


def save(*images: str) -> Line:
    """The images as one tar archive on stdout."""
    return cmd("docker", "save", *images)


def load() -> Line:
    """Images from a tar archive on stdin."""
    return cmd("docker", "load", "-q")


def run_offline(image: str, argv, stdin: bool = False, label: str = "ops.role=backup-check") -> Line:
    """A one-command container of `image` with no network, removed when it ends."""
    argv = words(argv)
    return cmd("docker", "run", "--rm", *(["-i"] if stdin else []), "--network", "none",
               "--label", label, "--entrypoint", argv[0], image, *argv[1:])


def run_detached(image: str, name: str, label: str, env: dict[str, str]) -> Line:
    """A long-lived container with no network (reached by `docker exec` only)."""
    return cmd("docker", "run", "-d", "--name", name, "--network", "none", "--label", label,
               *[w for k, v in env.items() for w in ("-e", f"{k}={v}")], image)


def run_beside(image: str, name: str, label: str, mounts: dict[str, str], read_only: tuple = ()) -> Line:
    """A container that waits (no network, no server started), with named volumes
    mounted (`mounts`: volume -> path; those in `read_only` read-only) and an anonymous
    volume for the database's data: commands are run in it with `docker exec`."""
    vols = [w for v, path in mounts.items()
            for w in ("-v", f"{v}:{path}{':ro' if v in read_only else ''}")]
    data = "/var/lib/postgresql/data"
    if data not in mounts.values():  # else a named volume of the caller's holds the data
        vols += ["-v", data]
    return cmd("docker", "run", "-d", "--name", name, "--network", "none", "--label", label,
               "--init", *vols, "--entrypoint", "sleep", image, "infinity")


def inspect(*objects: str) -> Line:
    return cmd("docker", "inspect", *objects)


def stop(*containers: str) -> Line:
    """Each container's own stop timeout (its stop_grace_period) is honoured."""
    return cmd("docker", "stop", *containers)


def remove(*containers: str, volumes: bool = False) -> Line:
    return cmd("docker", "rm", "-f", *(["-v"] if volumes else []), *containers)


def is_running(container: str) -> Line:
    """Prints `true` while the container runs."""
    return cmd("docker", "inspect", "-f", "{{.State.Running}}", container)


def logs_tail(container: str, lines: int) -> Line:
    return cmd("docker", "logs", "--tail", lines, container)


def engine_version() -> Line:
    return cmd("docker", "info", "--format", "{{.ServerVersion}}")


def compose_version() -> Line:
    return cmd("docker", "compose", "version", "--short")


def volume_create(name: str, labels: dict[str, str]) -> Line:
    return cmd("docker", "volume", "create", *(w for k, v in labels.items() for w in ("--label", f"{k}={v}")),
               name)


def volumes_labelled(label: str) -> Line:
    return cmd("docker", "volume", "ls", "-q", "--filter", f"label={label}")


def volume_remove(*names: str) -> Line:
    return cmd("docker", "volume", "rm", *names)


def fill_volume(image: str, volume: str, path: str, owner: str) -> Line:
    """A tar stream on stdin unpacked onto `volume` (at `path`), then owned by `owner`."""
    return cmd("docker", "run", "-i", "--rm", "--network", "none", "-v", f"{volume}:{path}",
               "--entrypoint", "sh", image, "-c", f"tar -C {path} -xf - && chown -R {owner} {path}")
