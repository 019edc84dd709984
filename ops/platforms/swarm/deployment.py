"""A deployed stack on its Swarm manager: the Deployment (its manager, paths and
settings) and what every Swarm operation does with it: read the stack's state, wait for
a service's rollout, create its versioned secrets, prune old objects, record the desired
replicas and the audit log. Blue-green deploys (bluegreen.py), monitoring, rotations and
the cluster's ps/health/scale all run on it."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ...commands import deploy as deploy_cmd
from ...deploy import records, stackfile
from ...deploy.lock import DeployLock
from ...errors import OpsError
from ...facts import rollout, swarm_stack

POLL = 0.5  # seconds between two looks at a rollout (each one SSH round trip)
KEEP_RELEASES = 10
# Once a node a rollout used is seen Down: how long the rollout may take to converge on
# the nodes left (Swarm reschedules the lost tasks; a new task needs its healthcheck).
NODE_LOSS_GRACE = 60.0
# Swarm's update of a service whose task was on the lost node waits for that task for
# good (its old tasks elsewhere stay up): after this long, a forced update replaces it.
NUDGE_AFTER = 8.0


class StepFailed(OpsError):
    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step, self.detail = step, message


@dataclass
class Deployment:
    env: str
    target: object  # the manager's runner (runtime.runner.Runner)
    paths: deploy_cmd.Paths
    replicas: int  # per color, when a rollback scales a finished color back up
    url: str | None = None  # public URL; None: verify through the gateway's own port
    trust: str | bool = True  # what the URL's certificate is verified against (a CA file)
    converge_timeout: float = 180
    registry_auth: bool | None = None  # None: no registry (images over SSH)
    out: object = sys.stderr
    timings: dict = field(default_factory=dict)
    step: str = "start"
    base_changed: bool = True  # the base stack file differs from the last release's
    pins: dict = field(default_factory=dict)  # {server: {secret: version}} kept (server_pins)
    nodes_lost: dict = field(default_factory=dict)  # {node id: hostname} seen Down meanwhile
    nodes_ready: set = field(default_factory=set)  # ids seen Ready during this action

    @property
    def app(self) -> str:
        return self.paths.app

    def svc(self, name: str) -> str:
        return deploy_cmd.service(self.app, name)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @contextmanager
    def stage(self, name: str):
        self.step = name
        self.say(f"==> {name}")
        start = time.monotonic()
        try:
            yield
        except OpsError as exc:
            if isinstance(exc, StepFailed):
                raise
            raise StepFailed(name, str(exc)) from exc
        self.timings[name] = round(time.monotonic() - start, 2)

    def lock(self, tag: str | None = None) -> DeployLock:
        return DeployLock(self.target, self.app, tag=tag, out=self.out,
                          base=self.paths.base, on_stale=self._abandoned)

    def _abandoned(self, holder: dict, reason: str) -> None:
        """The audit record of an action whose process died holding the lock (killed, or
        its machine or connection gone): it never wrote its own."""
        from ...deploy.lock import describe

        write_audit(self, records.record(
            "abandoned", self.env, "stale", step="unknown (its process died)",
            holder=describe(holder), action_of=holder.get("tag"),
            error=f"lock taken over: {reason}"))


def live(d: Deployment) -> tuple[str, str] | None:
    text = d.target.run(deploy_cmd.read_file(d.paths.upstream), "read the live upstream").stdout
    return swarm_stack.parse_upstream(text)


def snapshot(d: Deployment):
    """The deployed stack's services, tasks, nodes and live upstream in one round trip
    (swarm_stack.Snapshot); refuses when nothing is deployed."""
    from ...commands import cluster as cluster_cmd
    text = d.target.run(cluster_cmd.snapshot(d.app, d.paths.upstream),
                        "read the stack's state").stdout
    snap = swarm_stack.parse_snapshot(text, d.app)
    if not snap.services:
        raise OpsError(f"nothing deployed as stack {d.app!r} on --env {d.env} "
                       f"(run `inv deploy --env {d.env}`)")
    return snap


def services_state(d: Deployment, names: list[str]) -> dict:
    """{name: (service or None, tasks)} of stack services, in one round trip."""
    return services_and_nodes(d, names, nodes=False)[0]


def services_and_nodes(d: Deployment, names: list[str], nodes: bool = True):
    """(services_state's dict, {node id: rollout.NodeStatus}), in one round trip."""
    full = [d.svc(n) for n in names]
    r = d.target.run(deploy_cmd.services_state(full, nodes=nodes), f"inspect {', '.join(full)}")
    gone = rollout.engine_gone(r.stderr)
    if gone:  # nothing can be waited for: stop now, not at the converge timeout
        raise OpsError(f"the Docker engine on {d.target.name} does not answer as a Swarm manager "
                       f"({gone}); once `inv health --env {d.env}` answers, run it again")
    text = r.stdout
    found, listed = rollout.parse_services_nodes(text, deploy_cmd.TASKS_MARK, deploy_cmd.NODES_MARK)
    return {n: found.get(f, (None, [])) for n, f in zip(names, full, strict=True)}, listed


def service_state(d: Deployment, name: str):
    return services_state(d, [name])[name]


def _summary(d: Deployment, name: str, service, tasks) -> dict | None:
    if service is None:
        return None
    running = [t for t in tasks if t.desired == "running" and t.state == "running"
               and t.image == service.image]
    return {"service": d.svc(name), "tag": service.tag, "image": service.image,
            "replicas": service.replicas, "running": len(running), "update": service.update_state}


def scaled(d: Deployment) -> dict[str, int]:
    """Replica counts set by `inv scale`, which deploys keep."""
    return stackfile.parse_scaled(d.target.run(deploy_cmd.read_file(d.paths.scale),
                                               "read the scale settings").stdout)


def history(d: Deployment, lines: int = 20) -> list[dict]:
    return records.parse(d.target.run(deploy_cmd.tail(d.paths.audit, lines), "read the audit log").stdout)


def manager_clock(d: Deployment) -> str:
    return d.target.run(deploy_cmd.CLOCK, "read the manager's clock").stdout.strip()


def clock_and_upstream(d: Deployment) -> tuple[str, str]:
    """(the manager's clock, the live upstream file's text) in one round trip."""
    out = d.target.run(deploy_cmd.clock_and_file(d.paths.upstream), "read the clock and upstream").stdout
    clock, _, text = out.partition("\n")
    return clock.strip(), text


def show_failure(d: Deployment, name: str, image: str, since: str) -> None:
    """The new image's tasks that are not running: their state, error and last logs."""
    _, tasks = service_state(d, name)
    bad = [t for t in tasks if t.image == image and t.state != "running" and t.created >= since
           and t.node not in d.nodes_lost]  # a dead node's tasks say nothing more
    bad.sort(key=lambda t: t.state not in rollout.DEAD)  # the ended ones first
    d.say(f"--- {d.svc(name)} ({image}): {len(bad)} task(s) not running ---")
    for t in bad[:4]:
        why = t.error or ("ended before it was healthy (unhealthy, or exited)"
                          if t.state in rollout.DEAD else "not healthy yet")
        d.say(f"  task {t.id} slot {t.slot}: {t.state}: {why}")
    for t in [t for t in bad if t.container][:2]:  # a task that never started has no logs
        logs = d.target.run(deploy_cmd.service_logs(t.full_id, 15), f"logs of task {t.id}",
                            check=False).stdout
        d.say(f"--- logs of task {t.id} ---")
        for log_line in logs.strip().splitlines()[-15:] or ["(no output)"]:
            d.say(f"  {log_line}")


def wait_converged(d: Deployment, name: str, image: str, replicas: int | None, since: str,
                   timeout: float | None = None) -> rollout.Verdict:
    return wait_all(d, [(name, image, replicas)], since, timeout)[name]


def wait_all(d: Deployment, rollouts: list[tuple[str, str, int | None]], since: str,
             timeout: float | None = None) -> dict[str, rollout.Verdict]:
    """Wait until every (service, image, replicas) has converged: one look at all of
    them (and at the nodes) per round. `replicas` None: as many as the service asks for.
    The first that fails (or is still not done at the deadline) is shown and raised.

    A node that goes Down under a rollout is said at once; the rollout then has
    NODE_LOSS_GRACE seconds to converge on the nodes left, and stops at once when the
    scheduler finds no node for a task: never the whole timeout for a dead node."""
    limit = timeout or d.converge_timeout
    deadline = time.monotonic() + limit
    noticed: float | None = None
    nudged: set[str] = set()
    while True:
        states, nodes = services_and_nodes(d, [name for name, _, _ in rollouts])
        lost = rollout.lost_nodes(nodes, [t for _, tasks in states.values() for t in tasks])
        verdicts = {}
        for name, image, replicas in rollouts:
            service, tasks = states[name]
            count = replicas if replicas is not None else (service.replicas if service else 1)
            verdicts[name] = rollout.assess(service, tasks, image, count, since, lost=lost)
        lost_now = {t.node for v in verdicts.values() for t in v.lost}
        # Lost during this action: a node seen Ready before, or one holding a task of
        # this rollout. A node Down from before holds old tasks that just do not count.
        fresh = {t.node for v in verdicts.values() for t in v.lost
                 if t.node in d.nodes_ready or (since and t.created >= since)}
        # A node that was Ready and is not: said even when Swarm already moved its tasks.
        fresh |= {i for i in d.nodes_ready if i in nodes and nodes[i].gone}
        d.nodes_ready |= {i for i, n in nodes.items() if n.ready}
        if (lost_now | fresh) - set(d.nodes_lost):
            _say_lost(d, (lost_now | fresh) - set(d.nodes_lost), nodes, verdicts, fresh)
        if fresh and noticed is None:
            noticed = time.monotonic()
        if all(v.state == "done" for v in verdicts.values()):
            if lost_now:
                d.say(f"converged on the nodes left ({_names(d, lost_now)} down)")
            return verdicts
        now = time.monotonic()
        late = now > deadline
        for name, _, _ in rollouts:
            if noticed is not None and now - noticed > NUDGE_AFTER and name not in nudged \
                    and verdicts[name].only_old_left:
                nudged.add(name)
                d.say(f"{d.svc(name)}: its update waits on the lost node's task; forcing a new "
                      "rollout on the nodes left (docker service update --force)")
                d.target.run(deploy_cmd.service_force_update(d.svc(name)), f"force-update {d.svc(name)}")
        for name, image, _ in rollouts:
            verdict = verdicts[name]
            stuck = noticed is not None and verdict.state == "wait" and (
                verdict.unplaceable or now - noticed > NODE_LOSS_GRACE)
            if stuck:
                show_failure(d, name, image, since)
                raise OpsError(node_loss_message(d, name, image, verdict, now - noticed))
            if verdict.state == "failed" or (late and verdict.state != "done"):
                if verdict.state != "failed":
                    verdict.reason = f"not converged after {limit:.0f}s ({verdict.reason})"
                show_failure(d, name, image, since)
                raise OpsError(f"{d.svc(name)} ({image}): {verdict.reason}")
        time.sleep(POLL)


def _names(d: Deployment, ids) -> str:
    return ", ".join(sorted(d.nodes_lost.get(i) or i[:12] for i in ids))


def _say_lost(d: Deployment, ids: set[str], nodes: dict, verdicts: dict, fresh: set[str]) -> None:
    for node_id in sorted(ids):
        node = nodes.get(node_id)
        d.nodes_lost[node_id] = node.hostname if node else node_id[:12]
        state = node.status if node else "gone from the node list"
        on = [f"{d.svc(n)} ({sum(t.node == node_id for t in v.lost)})" for n, v in verdicts.items()
              if any(t.node == node_id for t in v.lost)]
        then = (f"the rollout goes on on the nodes left for up to {NODE_LOSS_GRACE:.0f}s"
                if node_id in fresh else "they do not count")
        tasks = f"its task(s) of {', '.join(on)} are lost" if on else "none of the rollout's tasks is on it"
        d.say(f"warning: node {d.nodes_lost[node_id]} ({node_id[:12]}) is {state}: {tasks}; {then}")


def node_loss_message(d: Deployment, name: str, image: str, verdict: rollout.Verdict,
                      waited: float) -> str:
    """One line: which node went, why the service cannot converge without it, what to do."""
    why = (verdict.unplaceable[0].error if verdict.unplaceable
           else f"not converged {waited:.0f}s after the node went ({verdict.reason})")
    names = _names(d, d.nodes_lost)
    return (f"node {names} went down during the rollout and {d.svc(name)} ({image}) cannot "
            f"converge on the nodes left: {why}; bring {names} back, or remove it for good "
            f"(`inv swarm.prune --env {d.env}` removes stale entries; `docker node rm` on the "
            "manager any other), then deploy again")


def prune_objects(d: Deployment, keep: set[str]) -> None:
    """Remove secret and config versions no service uses any more (replaced values, an
    edited nginx.conf). Best effort: the deploy has already succeeded."""
    try:
        listed = d.target.run(deploy_cmd.swarm_objects(d.app), "list secrets and configs").stdout
        used = d.target.run(deploy_cmd.swarm_object_refs(d.app), "read service references").stdout
        for kind, names in stackfile.stale_objects(listed, used, keep).items():
            d.target.run(deploy_cmd.swarm_objects_rm(kind, names), f"remove unused {kind}s")
            d.say(f"removed unused {kind}s: {', '.join(names)}")
    except OpsError as exc:
        d.say(f"warning: old secret/config versions left in place: {exc}")


def write_audit(d: Deployment, rec: dict) -> None:
    d.target.run(deploy_cmd.append_line(d.paths.audit, records.line(rec)), "append to the audit log",
                 check=False)


def create_secrets(d: Deployment, plan: stackfile.Plan, keys=None) -> set[str]:
    """The plan's secret versions (of `keys`) that the Swarm does not have yet; the
    values go on stdin. Returns the names present now."""
    secrets, _ = plan.names()
    wanted = {key: name for key, name in secrets.items()
              if plan.t.secrets[key].kind != "external" and (keys is None or key in keys)}
    present = set(d.target.run(deploy_cmd.secret_names(), "list secrets").stdout.split())
    for key, name in wanted.items():
        if name not in present:
            d.target.run(deploy_cmd.secret_create(name, d.app), f"create secret {name}",
                         input=plan.secret_values[key])
            present.add(name)
    return present


def record_desired(d: Deployment) -> None:
    """The replicas the stack now asks for, where the monitoring stack reads them
    (ReplicasBelowDesired). Best effort: the action itself has succeeded."""
    from ...commands import monitoring as mon

    d.target.run(mon.desired_replicas(d.app, d.paths.textfile), "record the desired replicas",
                 check=False)


def release_followers(d: Deployment, tag: str | None = None) -> tuple[str, dict[str, str]]:
    """(the newest release (of `tag`), its followers {service: image}); ("", {}) when
    no such release is kept on the manager."""
    release = d.target.run(deploy_cmd.newest_release(d.paths, tag), "find the release",
                           check=False).stdout.strip()
    if not release:
        return "", {}
    return release, stackfile.service_images(d.target.run(
        deploy_cmd.read_file(f"{release}/followers.json"), "read the followers", check=False).stdout)


def gateway_container(d: Deployment) -> str:
    cid = d.target.run(deploy_cmd.gateway_container(d.app), "find the gateway").stdout.strip()
    if not cid:
        raise OpsError(f"no running gateway (label ops.role=gateway) of stack {d.app} on "
                       f"{d.target.name}")
    return cid


def status(d: Deployment) -> dict:
    current = live(d)
    # A rollback leaves the followers rolling in the background: here is where that shows.
    follow = list(release_followers(d)[1])
    states = services_state(d, [*deploy_cmd.COLORS, *follow])
    colors = {which: _summary(d, which, *states[which]) for which in deploy_cmd.COLORS}
    follow = {name: _summary(d, name, *states[name]) for name in follow}
    return {"app": d.app, "env": d.env, "live": current[0] if current else None,
            "live_tag": current[1] if current else None, "colors": colors,
            "followers": follow, "url": d.url}


def scale(d: Deployment, targets: list[tuple[str, str, int]], keep: dict[str, int],
          timeout: float | None = None) -> None:
    """Scale stack services in place ([(service, image, replicas)]) and wait until each
    has exactly that many healthy tasks; `keep` is recorded for the next deploys. Under
    the deploy lock: a deploy never renders a count a scale is changing."""
    started = time.monotonic()
    rec = {"services": {name: n for name, _, n in targets}}
    with d.lock("scale"):
        since = manager_clock(d)
        for name, _, count in targets:
            d.target.run(deploy_cmd.service_scale(d.svc(name), count), f"scale {d.svc(name)}")
        for name, image, count in targets:
            wait_converged(d, name, image, count, since, timeout=timeout)
        if keep:
            merged = {**scaled(d), **keep}
            d.target.run(deploy_cmd.write_file(d.paths.scale, json.dumps(merged, sort_keys=True) + "\n"),
                         "record the scale settings")
        record_desired(d)
        rec["seconds"] = round(time.monotonic() - started, 2)
        write_audit(d, records.record("scale", d.env, "ok", **rec))
