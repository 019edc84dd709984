"""Command lines for the monitoring part of a deployed stack (pure; names are validated
by the callers' models and quoted here)."""

from __future__ import annotations

import shlex

from .deploy import SERVICE
from .line import Line, all_of, cmd, mkdir_p, pipe, script

DESIRED_METRIC = "ops_swarm_desired_replicas"


def _name(name: str) -> str:
    if not SERVICE.match(name):
        raise ValueError(f"invalid service name {name!r}")
    return name


def task_address(app: str, service: str) -> Line:
    """The address this node reaches a task of `service` at: its container's end of
    docker_gwbridge, which every task on a non-internal overlay network has (the
    overlay's own addresses are unreachable from the host). Empty when no task of the
    service runs here."""
    label = shlex.quote(f"label=com.docker.swarm.service.name={_name(app)}_{_name(service)}")
    fmt = shlex.quote('{{with index .Containers "CID"}}{{.IPv4Address}}{{end}}')
    # A script: the container id is substituted into the inspect format.
    return script(f"cid=$(docker ps -q --no-trunc --filter {label} --filter status=running | head -n 1); "
                  f"if [ -n \"$cid\" ]; then docker network inspect docker_gwbridge --format "
                  f"\"$(printf %s {fmt} | sed \"s/CID/$cid/\")\"; fi")


def desired_replicas(app: str, textfile: str) -> Line:
    """The replicas each replicated service of the stack asks for, as a node_exporter
    textfile (written then renamed). A failed listing writes no series: no false alarm."""
    path = f"{textfile.rstrip('/')}/ops_swarm.prom"
    tmp, ns = f"{path}.tmp", f"label=com.docker.stack.namespace={_name(app)}"
    awk = ("BEGIN { print \"# TYPE " + DESIRED_METRIC + " gauge\" } "
           "$2 == \"replicated\" { split($3, r, \"/\"); sub(/[^0-9].*/, \"\", r[2]); "
           "print \"" + DESIRED_METRIC + "{service=\\\"\" substr($1, length(p) + 1) \"\\\"} \" r[2] }")
    return all_of(mkdir_p(textfile),
                  pipe(cmd("docker", "service", "ls", "--filter", ns,
                           "--format", "{{.Name}} {{.Mode}} {{.Replicas}}"),
                       cmd("awk", "-v", f"p={app}_", awk).to(tmp)),
                  cmd("mv", "-f", tmp, path))


def services_rm(app: str, names: list[str], wait: int = 60) -> Line:
    """Remove these services of the stack (those deployed: others are skipped), then
    wait up to `wait` seconds for their containers on this node to be gone (Swarm stops
    them after `service rm` returns: an API still answering would look alive)."""
    full = [f"{_name(app)}_{_name(n)}" for n in names]
    words = " ".join(shlex.quote(f) for f in full)
    patterns = " ".join(f"-e {shlex.quote(f)}" for f in full)
    # A script: a loop over the services, then one waiting for their containers.
    return script(f"for s in {words}; do if docker service inspect \"$s\" >/dev/null 2>&1; then "
                  "docker service rm \"$s\" >/dev/null && echo \"$s\"; fi; done; "
                  f"i=0; while [ $i -lt {int(wait)} ] && docker ps --format "
                  "'{{.Label \"com.docker.swarm.service.name\"}}' | "
                  f"grep -qxF {patterns}; do sleep 1; i=$((i + 1)); done")


def make_dir(path: str) -> Line:
    return mkdir_p(path)
