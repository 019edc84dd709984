"""Swarm commands that run the app's migrate command once, as a job service of the
stack (`docker service create --mode replicated-job`, API 1.41+): the new image, the
blue-green service's environment, secrets and networks, no port and no healthcheck.
Pure: built from the translated service (deploy/translate.py) and the Swarm names of
its secrets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .line import Line, cmd, either, pipe, seq

JOB_LABEL = "ops.migrate"


def job_name(app: str) -> str:
    return f"{app}_migrate"


def create(app: str, svc: Mapping, image: str, command: Sequence[str],
           secret_names: Mapping[str, str], tag: str, registry_auth: bool = False) -> Line:
    """The job, detached (the caller waits for its task). Only what migrating needs of
    the service: its environment, secret files, networks and a tmpfs /tmp; it keeps the
    image's user and drops every capability like the service."""
    argv = ["docker", "service", "create", "--detach", "--quiet", "--name", job_name(app),
            "--mode", "replicated-job", "--restart-condition", "none", "--no-healthcheck",
            # On the manager, where remove() can clean its container up (and where the
            # databases are, pinned by their volumes).
            "--constraint", "node.role==manager",
            "--label", f"{JOB_LABEL}={tag}", "--label", f"com.docker.stack.namespace={app}",
            "--mount", "type=tmpfs,target=/tmp"]
    argv += ["--with-registry-auth"] if registry_auth else ["--no-resolve-image"]
    for cap in svc.get("cap_drop") or []:
        argv += ["--cap-drop", str(cap)]
    for net in svc.get("networks") or []:
        argv += ["--network", f"{app}_{net}"]
    for ref in svc.get("secrets") or []:
        source = str(ref["source"])
        target = str(ref.get("target") or source)
        argv += ["--secret", f"source={secret_names[source]},target={target},mode=0444"]
    for key, value in sorted((svc.get("environment") or {}).items()):
        argv += ["--env", f"{key}={'' if value is None else value}"]
    return cmd(*argv, image, *command)


def state(app: str) -> Line:
    """The job's task: `state<TAB>error` (CurrentState's first word, Complete or Failed
    when done)."""
    return cmd("docker", "service", "ps", "--no-trunc", "--format", "{{.CurrentState}}\t{{.Error}}",
               job_name(app))


def logs(app: str) -> Line:
    return cmd("docker", "service", "logs", "--raw", job_name(app))


def remove(app: str) -> Line:
    """Gone, whether it was there or not (a job left by an interrupted deploy), and its
    task's exited container with it: Docker 20.10 leaves a finished job's container
    behind when the service is removed."""
    label = f"label=com.docker.swarm.service.name={job_name(app)}"
    return seq(either(cmd("docker", "service", "rm", job_name(app)).silent(), cmd("true")),
               either(pipe(cmd("docker", "ps", "-aq", "--filter", label),
                           cmd("xargs", "-r", "docker", "rm", "-f")).silent(), cmd("true")))


def parse_state(text: str) -> tuple[str, str]:
    """(state, error) of the job's newest task: `pending` while none is listed yet."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "pending", ""
    first, _, error = lines[0].partition("\t")
    words = first.split()
    return (words[0].lower() if words else "pending"), error.strip()
