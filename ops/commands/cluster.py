"""Command lines that read and operate a deployed Swarm stack (ps, health, logs, exec).
Pure: names are validated by their callers' models and quoted here."""

from __future__ import annotations

import json
import re
import shlex

from .compose import log_flags
from .deploy import read_file
from .line import Line, cmd, pipe, q, script, words

SNAPSHOT_MARK = "@@ops-snapshot"
CONTAINER = re.compile(r"^[0-9a-f]{12,64}$")


def snapshot(app: str, upstream: str) -> Line:
    """One round trip to the manager: the stack's services, its tasks (current and
    recent), every node (three JSON arrays, as `docker inspect` prints them) and the
    live upstream file, each after its marker.

    The arrays come from the Engine API through curl when the default socket is the
    engine (no DOCKER_HOST) and curl is there: three requests cost ~30 ms, where the
    docker CLI needs six processes (~80 ms each pipeline, run side by side here)."""
    ns = f"com.docker.stack.namespace={app}"
    flt = shlex.quote(json.dumps({"label": [ns]}, separators=(",", ":")))
    q, qns = shlex.quote(app), shlex.quote(f"label={ns}")
    sock = "/var/run/docker.sock"
    api = (f"get() {{ curl -fsS --unix-socket {sock} -G \"http://docker/$1\" ${{2:+--data-urlencode}} "
           "${2:+\"filters=$2\"}; echo; }; "
           f"echo {SNAPSHOT_MARK} services; get services {flt}; "
           f"echo {SNAPSHOT_MARK} tasks; get tasks {flt}; "
           f"echo {SNAPSHOT_MARK} nodes; get nodes; ")
    cli = ("d=$(mktemp -d) || exit 1; trap 'rm -rf \"$d\"' EXIT; "
           f"(docker service ls -q --filter {qns} | xargs -r docker service inspect) >\"$d/s\" & "
           f"(docker stack ps -q --no-trunc {q} 2>/dev/null "
           "| xargs -r docker inspect --type task 2>/dev/null) >\"$d/t\" & "
           "(docker node ls -q | xargs -r docker node inspect) >\"$d/n\" & "
           "wait; "
           f"echo {SNAPSHOT_MARK} services; cat \"$d/s\"; "
           f"echo {SNAPSHOT_MARK} tasks; cat \"$d/t\"; "
           f"echo {SNAPSHOT_MARK} nodes; cat \"$d/n\"; ")
    # A script: a shell function and temporary files let the reads run side by side.
    return script(f"if [ -z \"${{DOCKER_HOST:-}}\" ] && [ -w {sock} ] && command -v curl >/dev/null; "
                  f"then {api}else {cli}fi; "
                  f"echo {SNAPSHOT_MARK} live; {read_file(upstream)}; true")


def container_exec(container: str, argv: list[str], interactive: bool = False) -> Line:
    if not CONTAINER.match(container):
        raise ValueError(f"invalid container id {container!r}")
    return cmd("docker", "exec", *(["-it"] if interactive else []), container, *words(argv))


def disk_free(*paths: str) -> Line:
    """`mountpoint size available` (KiB) of the filesystem holding each path (POSIX df):
    Docker's data, and on the manager the deploy's state (lock, releases, audit log)."""
    paths = paths or ("/var/lib/docker",)
    return pipe(cmd("df", "-P", "-k", *paths).no_errors(), cmd("awk", "NR>1 {print $6, $2, $4}"))


def service_logs(services: list[str], follow: bool = False, tail: str | None = None,
                 since: str | None = None, timestamps: bool = False) -> Line:
    """`docker service logs` of each service (the manager gathers every node's), run side
    by side so that --follow streams them all; each line names service, task and node."""
    opts = ["--no-trunc", *log_flags(follow, tail, since, timestamps)]
    if follow:
        runs = [cmd("docker", "service", "logs", *opts, s).merged().background() for s in services]
    else:  # bounded: it can hang for good (docker/cli#4678); a hung one is said on stderr
        # A script: the exit status of `timeout` is read by `case`.
        bounded = ["timeout", "-k", 5, SERVICE_LOGS_WAIT, "docker", "service", "logs", *opts]
        runs = [script(f"{{ {cmd(*bounded, s).merged()}; "
                       f"case $? in 124|137) echo {LOGS_HUNG} {q(s)} >&2 ;; esac; }} &")
                for s in services]
    return Line(" ".join([*runs, "wait"]))


SERVICE_LOGS_WAIT = 300  # seconds `inv logs` (no --follow) waits for one service's logs
LOGS_HUNG = "@@ops-logs-hung"


def hung_services(stderr: str) -> list[str]:
    """The services service_logs said did not finish within SERVICE_LOGS_WAIT."""
    return [line.split(" ", 1)[1] for line in stderr.splitlines()
            if line.startswith(LOGS_HUNG + " ")]
