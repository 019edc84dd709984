"""What a deployed Swarm stack looks like, read from one `docker inspect` snapshot
(pure): its services, their tasks and the nodes, and the verdicts `inv ps` and
`inv health` give on them. Service names are the stack's without the `<app>_` prefix;
the api runs as two colors, and `api` means the live one."""

from __future__ import annotations

from dataclasses import dataclass

from ..commands.cluster import SNAPSHOT_MARK
from ..commands.deploy import APP_SERVICE, COLORS
from ..errors import OpsError
from .compose import STATEFUL_ROLES
from .rollout import SwarmService, Task
from .values import load_json

DISK_WARN_PCT = 15.0


def parse_upstream(text: str) -> tuple[str, str] | None:
    """(color, tag) from an upstream file written by `upstream`, else None."""
    first = (text or "").splitlines()[:1]
    if not first or not first[0].startswith("# ops-deploy "):
        return None
    fields = dict(p.split("=", 1) for p in first[0][len("# ops-deploy "):].split() if "=" in p)
    if fields.get("live") not in COLORS or not fields.get("tag"):
        return None
    return fields["live"], fields["tag"]


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    addr: str
    role: str
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain

    @classmethod
    def from_inspect(cls, raw: dict) -> Node:
        status, spec = raw.get("Status") or {}, raw.get("Spec") or {}
        return cls(raw.get("ID", ""), (raw.get("Description") or {}).get("Hostname", ""),
                   status.get("Addr", ""), spec.get("Role", ""), status.get("State", ""),
                   spec.get("Availability", ""))


def short_name(app: str, full: str) -> str:
    """A stack service's name without the `<app>_` prefix: blue, app-db, gateway, ..."""
    return full[len(app) + 1:] if full.startswith(app + "_") else full


def role(name: str, svc: SwarmService) -> str:
    """What `inv health` checks a service with: the colors are the app; the rest say it
    in an `ops.role` label (service labels over container labels)."""
    if name in COLORS:
        return "app"
    return str({**svc.container_labels, **svc.labels}.get("ops.role", ""))


@dataclass
class Snapshot:
    app: str
    services: dict[str, SwarmService]  # by short name
    tasks: list[Task]
    nodes: list[Node]
    live: tuple[str, str] | None = None  # (color, tag) the gateway routes to

    @property
    def live_color(self) -> str | None:
        return self.live[0] if self.live else None

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def node_name(self, node_id: str) -> str:
        n = self.node(node_id)
        return n.hostname if n else (node_id[:12] or "-")

    def tasks_of(self, svc: SwarmService) -> list[Task]:
        return [t for t in self.tasks if t.service_id == svc.id]

    def running(self, svc: SwarmService) -> list[Task]:
        return sorted((t for t in self.tasks_of(svc) if t.desired == "running" and t.state == "running"),
                      key=lambda t: (t.slot or 0, t.node))

    def service(self, name: str, live: str | None) -> tuple[str, SwarmService]:
        """A service by the name a user gives: `api` is the live color, `api@blue` a
        given color, anything else the stack's own service name."""
        wanted = name
        if name == APP_SERVICE or name.startswith(APP_SERVICE + "@"):
            color = name.partition("@")[2] or live
            if "@" in name and color not in COLORS:
                raise OpsError(f"{name!r}: unknown color (use {APP_SERVICE}@blue or "
                               f"{APP_SERVICE}@green)")
            if color is None:
                raise OpsError(f"{name!r}: no live color yet (deploy first), or name one: "
                               f"{APP_SERVICE}@blue, {APP_SERVICE}@green")
            wanted = color
        if wanted in self.services:
            return wanted, self.services[wanted]
        known = sorted({APP_SERVICE, *self.services})
        raise OpsError(f"unknown service {name!r} in stack {self.app} (known: {', '.join(known)})")


def scale_targets(snap: Snapshot, wanted: dict[str, int], live: str | None
                  ) -> list[tuple[str, SwarmService, int]]:
    """(stack service, its spec, replicas) for `inv scale --env E`, or a refusal of
    anything that cannot run as several identical tasks, or would take the site down."""
    out = []
    for name, count in wanted.items():
        short, svc = snap.service(name, live)
        why = None
        if role(short, svc) in STATEFUL_ROLES or {**svc.container_labels, **svc.labels}.get(
                "ops.stateful") == "true":
            why = f"it is stateful (role {role(short, svc) or 'stateful'}); replicas would not share its data"
        elif svc.global_mode:
            why = "it runs one task per node (global mode)"
        elif svc.host_ports:
            why = (f"it publishes port(s) {', '.join(map(str, svc.host_ports))} in host mode, "
                   "which one task per node can hold")
        elif short == live and count == 0:
            why = (f"{short} is the live color: scaling it to 0 takes the site down "
                   "(`inv deploy.finish` scales the idle one)")
        if why:
            raise OpsError(f"refusing to scale {name}: {why}")
        if short in [o[0] for o in out]:
            raise OpsError(f"{name!r} names {short}, given twice")
        out.append((short, svc, count))
    return out


def parse_snapshot(text: str, app: str) -> Snapshot:
    """The three JSON arrays and the live upstream printed by commands.cluster.snapshot."""
    parts: dict[str, str] = {}
    current = None
    for line in (text or "").splitlines():
        if line.startswith(SNAPSHOT_MARK):
            current = line[len(SNAPSHOT_MARK):].strip()
            parts[current] = ""
        elif current:
            parts[current] += line + "\n"
    if set(parts) != {"services", "tasks", "nodes", "live"}:
        raise OpsError(f"stack {app}: unreadable cluster state (is this a Swarm manager?)")

    def items(key):
        text = parts[key].strip()
        if not text:
            return []
        # xargs may run docker inspect more than once: several arrays, one after another.
        data = load_json("[" + text.replace("]\n[", "],\n[") + "]", f"docker inspect ({key})")
        return [item for chunk in data for item in (chunk if isinstance(chunk, list) else [chunk])]

    services = [SwarmService.from_inspect(r) for r in items("services")]
    return Snapshot(app, {short_name(app, svc.name): svc for svc in services},
                    [Task.from_inspect(r) for r in items("tasks")],
                    [Node.from_inspect(r) for r in items("nodes")], parse_upstream(parts["live"]))


# -- verdicts -----------------------------------------------------------------------------

def service_verdict(snap: Snapshot, name: str, live: str | None) -> tuple[bool, str]:
    """Every desired task running (healthy, for a service with a healthcheck: Swarm only
    calls it running once the check passes). Zero desired is fine only for the idle color."""
    svc = snap.services[name]
    running = snap.running(svc)
    desired = svc.replicas
    where = ", ".join(sorted({snap.node_name(t.node) for t in running}))
    if svc.global_mode:  # one per eligible node
        return bool(running), f"{len(running)} running (global) on {where or 'no node'}"
    if desired == 0:
        if name in COLORS and name != live:
            return True, "idle color, scaled to 0"
        return False, "scaled to 0 replicas: nothing runs it"
    detail = f"{len(running)}/{desired} running" + (f" on {where}" if where else "")
    if len(running) >= desired:
        return True, detail
    return False, detail + problem(snap, svc)


def problem(snap: Snapshot, svc: SwarmService) -> str:
    """The newest task that is not running, with its error: why a replica is missing."""
    bad = [t for t in snap.tasks_of(svc) if t.state != "running"]
    if not bad:
        return ""
    t = max(bad, key=lambda t: t.timestamp)
    return f"; last task {t.state} on {snap.node_name(t.node)}" + (f": {t.error}" if t.error else "")


def node_verdict(node: Node, nodes: list[Node] = (), env: str = "") -> tuple[bool, str]:
    """A node's health; a Down entry whose hostname a Ready node also has is named as
    stale (the machine rejoined as a new node), with the task that removes it."""
    from .rollout import stale_nodes

    ok = node.state == "ready" and node.availability == "active"
    detail = f"{node.role}, {node.state}, {node.availability}" + (f", {node.addr}" if node.addr else "")
    for old, new in stale_nodes(nodes):
        if old.id == node.id:
            return False, (f"stale entry {node.id[:12]} ({node.state}): {node.hostname} rejoined as "
                           f"{new.id[:12]}; `inv swarm.prune --env {env or '<env>'}` removes it")
    return ok, detail


def disk_verdict(text: str, warn_pct: float = DISK_WARN_PCT) -> tuple[bool, bool, str]:
    """(ok, warning, detail) from `size available` KiB, or `mountpoint size available`
    lines (one per filesystem, each said once): under warn_pct free is a warning,
    nothing free a failure. The fullest filesystem decides."""
    rows = {}
    for line in (text or "").strip().splitlines():
        words = line.split()
        if len(words) == 2:
            words = ["", *words]
        if len(words) == 3 and words[1].isdigit() and words[2].isdigit():
            rows[words[0]] = (int(words[1]), int(words[2]))
    if not rows:
        return False, False, f"cannot read free disk: {text.strip()[:80]!r}"
    verdicts = []
    for mount, (size, avail) in rows.items():
        pct = 100.0 * avail / size if size else 0.0
        detail = (f"{mount}: " if mount and len(rows) > 1 else "") + \
            f"{pct:.0f}% free ({avail / 1048576:.1f} GiB of {size / 1048576:.1f} GiB)"
        if pct < warn_pct:
            detail += " (FULL)" if avail <= 0 else f" (under {warn_pct:.0f}%)"
        verdicts.append((avail > 0, pct < warn_pct, pct, detail))
    verdicts.sort(key=lambda v: v[2])
    return all(v[0] for v in verdicts), any(v[1] for v in verdicts), "; ".join(v[3] for v in verdicts)


def ps_rows(snap: Snapshot, live: str | None) -> list[dict]:
    """One row per service: desired/running replicas, image tag, the live color marked,
    the node of each task, and the tasks that are not running with their error."""
    rows = []
    for name in sorted(snap.services, key=lambda n: (n not in COLORS, n)):
        svc = snap.services[name]
        running = snap.running(svc)
        current = [t for t in snap.tasks_of(svc) if t.desired == "running" and t.state != "running"]
        rows.append({
            "service": name, "live": name == live, "role": role(name, svc),
            "image": svc.image, "tag": svc.tag,
            "desired": None if svc.global_mode else svc.replicas, "running": len(running),
            "tasks": [{"slot": t.slot, "node": snap.node_name(t.node), "state": t.state,
                       "container": t.container[:12]} for t in running],
            "not_running": [{"slot": t.slot, "node": snap.node_name(t.node), "state": t.state,
                             "error": t.error} for t in current],
        })
    return rows


def host_for_node(node: Node, hosts):
    """The inventory host a Swarm node is: by hostname (the sandbox names its machines
    after its hosts), else by the address the node advertises."""
    for h in hosts:
        if node.hostname and node.hostname in {h.name, h.address, h.hostname}:
            return h
    for h in hosts:
        if node.addr and node.addr in {h.swarm_addr, h.endpoint, h.address}:
            return h
    return None


def not_a_manager(info: str) -> str | None:
    """Why a node whose `docker info` printed '<LocalNodeState> <ControlAvailable>'
    (commands.deploy.swarm_state) cannot be a deploy's manager; None when it can."""
    words = info.split()
    state = words[0] if words else "unknown"
    if state == "active":
        return None if words[1:2] == ["true"] else "a Swarm worker, not a manager"
    return f"not in a Swarm (its Swarm state: {state})"
