"""Reading a Swarm service's rollout (pure): `docker service inspect` and
`docker inspect --type task` JSON in, a verdict out. Health-gated: a task whose
container has a healthcheck is `running` only once healthy (before, it is `starting`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .values import load_json

# Task states that mean the task is gone for good (docker/swarmkit api/types.proto).
DEAD = {"failed", "rejected", "shutdown", "complete", "orphaned", "remove"}
BAD_UPDATE = {"paused", "rollback_started", "rollback_paused", "rollback_completed"}


def parse_json_list(text: str) -> list[dict]:
    text = (text or "").strip()
    if not text:
        return []
    data = load_json(text, "docker inspect")
    return data if isinstance(data, list) else [data]


@dataclass(frozen=True)
class Task:
    """A Swarm task as `docker inspect --type task` shows it (deploys and `inv ps` alike)."""
    id: str
    slot: int | None
    image: str
    desired: str
    state: str
    error: str
    node: str  # full node ID
    created: str
    full_id: str = ""
    service_id: str = ""
    container: str = ""  # full container ID, once the task has one
    timestamp: str = ""  # of the last state change

    @classmethod
    def from_inspect(cls, raw: dict) -> Task:
        status = raw.get("Status") or {}
        image = ((raw.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")
        return cls(id=raw.get("ID", "")[:12], slot=raw.get("Slot"),
                   image=image.split("@", 1)[0], desired=raw.get("DesiredState", ""),
                   state=status.get("State", ""), error=status.get("Err", "") or "",
                   node=raw.get("NodeID", ""), created=raw.get("CreatedAt", ""),
                   full_id=raw.get("ID", ""), service_id=raw.get("ServiceID", ""),
                   container=(status.get("ContainerStatus") or {}).get("ContainerID", "") or "",
                   timestamp=status.get("Timestamp", ""))


@dataclass(frozen=True)
class SwarmService:
    """A Swarm service as `docker service inspect` shows it."""
    name: str
    image: str
    replicas: int  # 0 for a global service too: see `global_mode`
    labels: dict  # service labels
    update_state: str | None
    update_message: str
    update_started: str = ""  # RFC 3339, manager clock
    id: str = ""
    container_labels: dict = field(default_factory=dict)
    global_mode: bool = False
    host_ports: tuple = ()  # published in host mode: one task per node can hold each
    env: dict = field(default_factory=dict)  # the container spec's environment
    # The container spec's secrets: {name, target, uid, gid, mode} each (a rotation swaps them).
    secrets: tuple = ()

    @classmethod
    def from_inspect(cls, raw: dict) -> SwarmService:
        spec = raw.get("Spec") or {}
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        mode = spec.get("Mode") or {}
        replicas = (mode.get("Replicated") or {}).get("Replicas", 0)
        update = raw.get("UpdateStatus") or {}
        ports = ((spec.get("EndpointSpec") or {}).get("Ports") or [])
        return cls(name=spec.get("Name", ""), image=container.get("Image", "").split("@", 1)[0],
                   replicas=int(replicas or 0), labels=spec.get("Labels") or {},
                   update_state=update.get("State"), update_message=update.get("Message", ""),
                   update_started=update.get("StartedAt", "") or "", id=raw.get("ID", ""),
                   container_labels=container.get("Labels") or {}, global_mode="Global" in mode,
                   host_ports=tuple(p.get("PublishedPort") for p in ports
                                    if p.get("PublishMode") == "host"),
                   env=dict(e.split("=", 1) for e in container.get("Env") or [] if "=" in e),
                   secrets=tuple(_secret_ref(r) for r in container.get("Secrets") or []))

    @property
    def tag(self) -> str:
        return self.image.rpartition(":")[2] if ":" in self.image.rsplit("/", 1)[-1] else "latest"


def _secret_ref(raw: dict) -> dict:
    f = raw.get("File") or {}
    return {"name": raw.get("SecretName", ""), "target": f.get("Name", ""), "uid": f.get("UID", "0"),
            "gid": f.get("GID", "0"), "mode": int(f.get("Mode", 0o444))}


def parse_services_state(text: str, mark: str) -> dict[str, tuple[SwarmService | None, list[Task]]]:
    """{service name: (service, its tasks)} from `commands.deploy.services_state` output."""
    inspected, _, tasks_text = (text or "").partition(mark)
    services = [SwarmService.from_inspect(raw) for raw in parse_json_list(inspected)]
    tasks = [Task.from_inspect(raw) for raw in parse_json_list(tasks_text)]
    return {s.name: (s, [t for t in tasks if t.service_id == s.id]) for s in services}


# What the docker CLI on a manager says when there is no manager to ask: its engine
# stopped (or restarts), or the node lost its managers' quorum.
ENGINE_GONE = ("Cannot connect to the Docker daemon", "is not a swarm manager",
               "does not have a leader", "context deadline exceeded")


def engine_gone(stderr: str) -> str | None:
    """The line of `stderr` that says the manager's engine cannot answer, if any."""
    return next((ln.strip() for ln in (stderr or "").splitlines()
                 if any(g in ln for g in ENGINE_GONE)), None)


def parse_services_nodes(text: str, tasks_mark: str, nodes_mark: str):
    """(parse_services_state's dict, {node id: NodeStatus}) from
    `commands.deploy.services_state` output with its node listing."""
    services, _, nodes = (text or "").partition(nodes_mark)
    return parse_services_state(services, tasks_mark), parse_node_lines(nodes)


@dataclass(frozen=True)
class NodeStatus:
    id: str
    hostname: str
    status: str  # ready | down | unknown | disconnected (lower case)
    availability: str = "active"

    @classmethod
    def from_ls(cls, raw: dict) -> NodeStatus:
        """One object of `docker node ls --format '{{json .}}'`."""
        node_id = str(raw.get("ID", "")).rstrip(" *")  # `*` marks the node the CLI runs on
        return cls(node_id, str(raw.get("Hostname", "")), str(raw.get("Status", "")).lower(),
                   str(raw.get("Availability", "")).lower())

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def gone(self) -> bool:
        """Down (missed heartbeats) or disconnected. `unknown` is every node's state for
        a moment after a manager restarts, until it reports in: not a loss."""
        return self.status in ("down", "disconnected")


def parse_node_lines(text: str) -> dict[str, NodeStatus]:
    """{node id: NodeStatus} from `docker node ls --format '{{json .}}'` lines; lines that
    are not JSON (an engine's warning) are skipped."""
    import json

    nodes = {}
    for line in (text or "").splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if isinstance(raw, dict) and raw.get("ID"):
            node = NodeStatus.from_ls(raw)
            nodes[node.id] = node
    return nodes


def lost_nodes(nodes: dict[str, NodeStatus], tasks: list[Task]) -> set[str]:
    """The ids of the nodes `tasks` run on that are down, disconnected or gone from the
    node list. An empty listing (not read) proves nothing: no node is lost."""
    if not nodes:
        return set()
    return {t.node for t in tasks if t.node and (t.node not in nodes or nodes[t.node].gone)}


def stale_nodes(nodes) -> list[tuple[object, object]]:
    """(stale entry, the Ready node with its hostname) pairs: a machine that rejoined the
    Swarm (its engine's state was lost) is a new node, and its old entry stays Down for
    good. Takes anything with id, hostname and a lower-case state or status."""
    def state(n):
        return str(getattr(n, "state", None) or getattr(n, "status", "")).lower()

    ready = {n.hostname: n for n in nodes if state(n) == "ready" and n.hostname}
    return [(n, ready[n.hostname]) for n in nodes
            if state(n) != "ready" and n.hostname in ready and n.id != ready[n.hostname].id]


NO_NODE = "no suitable node"  # the scheduler's word for a task nothing can run


@dataclass
class Verdict:
    state: str  # "done" | "wait" | "failed"
    reason: str = ""
    running: int = 0
    failures: list[Task] = field(default_factory=list)
    lost: list[Task] = field(default_factory=list)  # on nodes that are not Ready
    unplaceable: list[Task] = field(default_factory=list)  # pending: no suitable node
    old: int = 0  # tasks of another image still up (on the nodes that count)
    wanted: int = 0  # replicas asked for

    @property
    def only_old_left(self) -> bool:
        """Enough healthy new tasks, and old ones still up: an update that does not go on."""
        return self.state == "wait" and self.old > 0 and self.running >= self.wanted

def assess(service: SwarmService | None, tasks: list[Task], image: str, replicas: int,
           since: str = "", max_failures: int | None = None,
           lost: set[str] | frozenset = frozenset()) -> Verdict:
    """Has the service converged on `image` with `replicas` healthy tasks?

    `since` (RFC 3339 from the manager's clock) ignores task history from before this
    rollout. A restart loop (as many failed tasks of the new image as replicas, at
    least 2) fails fast instead of waiting for the timeout. Tasks on the `lost` nodes
    (not Ready) count for nothing: the manager still lists a dead node's task as
    running, and Swarm starts its replacement elsewhere."""
    if service is None:
        return Verdict("wait", "service not created yet")
    gone = [t for t in tasks if t.node in lost and t.desired == "running"]
    tasks = [t for t in tasks if t.node not in lost]
    unplaceable = [t for t in tasks if t.desired == "running" and t.state == "pending"
                   and NO_NODE in t.error]
    # A paused update left by an earlier rollout stays in UpdateStatus until the next
    # update; scaling that color up again is no update, so only this rollout's counts.
    if service.update_state in BAD_UPDATE and (not since or service.update_started >= since):
        return Verdict("failed", f"update {service.update_state}: {service.update_message}".strip(),
                       failures=_failures(tasks, image, since), lost=gone)
    current = [t for t in tasks if t.desired == "running"]
    good = [t for t in current if t.state == "running" and t.image == image]
    failures = _failures(tasks, image, since)
    limit = max_failures if max_failures is not None else max(2, replicas)
    if replicas and len(failures) >= limit:
        return Verdict("failed", f"{len(failures)} task(s) of {image} failed", len(good), failures,
                       gone)
    others = [t for t in current if t.image != image]
    # A rollout that lost a node may stay "updating" (its task there never reports):
    # the tasks on the nodes left are the proof.
    updating = service.update_state in ("updating",) and not gone
    if len(good) == replicas and not others and not updating:
        return Verdict("done", f"{replicas}/{replicas} running and healthy", len(good), lost=gone)
    detail = f"{len(good)}/{replicas} healthy on {image}"
    if others:
        detail += f", {len(others)} old task(s) still up"
    if unplaceable:
        detail += f", {len(unplaceable)} with {unplaceable[0].error}"
    return Verdict("wait", detail, len(good), failures, gone, unplaceable, len(others), replicas)


def _failures(tasks: list[Task], image: str, since: str) -> list[Task]:
    """Tasks of the new image, started in this rollout, that already ended. Nothing else
    stops them while we wait, so each is a failure, whatever its exit: an unhealthy
    container that drains on SIGTERM ends `complete` with exit 0."""
    return [t for t in tasks if t.image == image and t.state in DEAD
            and (not since or t.created >= since)]


@dataclass(frozen=True)
class Probe:
    address: str
    status: str
    version: str
    color: str


def parse_probe(text: str) -> list[Probe]:
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "probe":
            out.append(Probe(*parts[1:]))
    return out


def judge_probe(probes: list[Probe], replicas: int, tag: str, which: str) -> str | None:
    """None when every task of the color answers ready with the right identity."""
    if len(probes) < replicas:
        return f"{len(probes)} of {replicas} task address(es) resolvable"
    for p in probes:
        if p.status != "200":
            return f"{p.address} answered /health/ready with {p.status}"
        if p.version != tag or p.color != which:
            return f"{p.address} is {p.color}/{p.version}, expected {which}/{tag}"
    return None


@dataclass(frozen=True)
class Identity:
    """One answer through the gateway: HTTP status (0: none) and who sent it."""
    status: int
    color: str = ""
    version: str = ""
    error: str = ""

    def describe(self) -> str:
        if not self.status:
            return f"no response ({self.error or 'connection failed'})"
        if self.status == 429:
            return "HTTP 429, rate-limited: not a wrong color"
        return f"HTTP {self.status} from {self.color or '-'}/{self.version or '-'}"


def judge_identity(answer: Identity, color: str, tag: str) -> str:
    """ok: the wanted color and version answered; limited: a 429, which proves nothing
    either way; wrong: anything else (another color, an error, no answer)."""
    if answer.status == 429:
        return "limited"
    if answer.status == 200 and (answer.color, answer.version) == (color, tag):
        return "ok"
    return "wrong"


def parse_headers(text: str) -> dict[str, str]:
    """Lower-cased headers of the last response in `curl -D -` output."""
    headers: dict[str, str] = {}
    for line in (text or "").replace("\r", "").splitlines():
        if line.startswith("HTTP/"):
            headers = {":status": line.split()[1] if len(line.split()) > 1 else ""}
        elif ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers
