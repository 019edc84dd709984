"""The Compose model (`docker compose config --format json` of compose.yaml plus the
deploy overlay) translated into Swarm stack services (pure). One stack definition: what
runs in a cluster is what runs locally, minus what Swarm cannot do, which is said.

Swarm facts this encodes:
- `docker stack deploy` validates against the v3 schema (unknown keys fail) and ignores
  `build`, `depends_on`, `container_name`, `restart`, `security_opt`, `privileged`, ...;
  `restart` is translated to `deploy.restart_policy`, the rest dropped with a note;
- no IPVS here (and on some kernels): every service is `endpoint_mode: dnsrr` and ports
  are published in host mode; Swarm cannot bind an address, so a port published on
  loopback only is dropped rather than opened on every interface;
- local volumes live on one node: a service with a named volume and no placement is
  pinned to the manager;
- a bind mount of a path in this checkout does not exist on the nodes: dropped (ship the
  file as a config in the deploy overlay)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import OpsError

BLUE_GREEN = "blue-green"
ON_MANAGER = "node.role == manager"

# Kept as they are (after the value fixes below).
COPIED = ("image", "command", "entrypoint", "environment", "labels", "user", "working_dir",
          "hostname", "stop_grace_period", "stop_signal", "cap_add", "cap_drop", "read_only",
          "init", "logging", "sysctls", "ulimits", "dns", "dns_search")
# Dropped, with the reason a user reads in `inv config --env E`.
IGNORED = {
    "build": "images are built here and delivered, never built on the cluster",
    "depends_on": "Swarm starts services in any order; healthchecks and restarts cover it",
    "container_name": "Swarm names tasks itself",
    "security_opt": "not supported by Swarm services (no-new-privileges is not applied)",
    "privileged": "not supported by Swarm services",
    "devices": "not supported by Swarm services",
    "links": "not supported by Swarm (service names resolve on the overlay network)",
    "external_links": "not supported by Swarm",
    "network_mode": "not supported by Swarm services",
    "cgroup_parent": "not supported by Swarm services",
    "userns_mode": "not supported by Swarm services",
    "ipc": "not supported by Swarm services",
    "pid": "not supported by Swarm services",
    "profiles": "every service of the file is deployed",
    "pull_policy": "nodes use the image delivered to them",
    "mem_limit": "use deploy.resources.limits.memory",
    "cpus": "use deploy.resources.limits.cpus",
    "stdin_open": "not for services", "tty": "not for services",
}
# Keys of compose's output that carry nothing to translate.
SILENT = {"expose", "env_file", "networks", "ports", "volumes", "tmpfs", "secrets", "configs",
          "healthcheck", "deploy", "restart", "extra_hosts", "shm_size"}
# What a published port's host_ip is when it binds every interface.
ALL_INTERFACES = ("", "0.0.0.0", "::")  # noqa: S104 - comparing, not binding
HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")
RESTART = {"always": {"condition": "any"}, "unless-stopped": {"condition": "any"},
           "no": {"condition": "none"}}
SECRETS_DIR = "/run/secrets/"


@dataclass(frozen=True)
class Source:
    """Where a secret's or config's value comes from: an environment variable, a file
    (an absolute path on this machine), inline content, or an existing Swarm object."""

    kind: str  # environment | file | content | external
    value: str


@dataclass
class Translation:
    services: dict[str, dict]
    networks: dict[str, dict]
    volumes: dict[str, dict]
    secrets: dict[str, Source]
    configs: dict[str, Source]
    notes: list[str] = field(default_factory=list)

    @property
    def blue_green(self) -> str:
        """The one service deployed blue-green (label `ops.deploy: blue-green`)."""
        marked = [n for n, s in self.services.items()
                  if (s.get("labels") or {}).get("ops.deploy") == BLUE_GREEN]
        if len(marked) != 1:
            raise OpsError(f"the deploy needs exactly one service labelled ops.deploy: {BLUE_GREEN} "
                           f"in the compose files (found {len(marked)}: {', '.join(marked) or 'none'})")
        return marked[0]

    def followers(self) -> list[str]:
        """Services running the blue-green service's image (a worker, say): they follow
        its releases, updated once the switch has succeeded."""
        repo = repository(self.services[self.blue_green]["image"])
        return [n for n, s in self.services.items()
                if n != self.blue_green and repository(s["image"]) == repo]

    def base(self) -> list[str]:
        """Everything else: data tier, cache, broker, gateway."""
        skip = {self.blue_green, *self.followers()}
        return [n for n in self.services if n not in skip]

    def http_port(self) -> int:
        """The blue-green service's port, from its `ops.http.port` label."""
        name = self.blue_green
        port = str((self.services[name].get("labels") or {}).get("ops.http.port", ""))
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise OpsError(f"service {name}: label ops.http.port must name its HTTP port "
                           f"(got {port or 'nothing'})")
        return int(port)

    def on_manager(self, name: str) -> bool:
        constraints = ((self.services[name].get("deploy") or {}).get("placement") or {}).get(
            "constraints") or []
        return ON_MANAGER in [" ".join(c.split()) for c in constraints]


def repository(image: str) -> str:
    """`registry:5000/team/api:v1@sha256:...` -> `registry:5000/team/api`."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)
    if ":" in last[-1]:
        ref = ref[: len(ref) - len(last[-1]) + last[-1].index(":")]
    return ref


def _resources(res: dict, name: str, notes: _Notes) -> dict:
    out = {}
    for part in ("limits", "reservations"):
        src = res.get(part) or {}
        kept = {k: str(src[k]) for k in ("cpus", "memory") if src.get(k) not in (None, "", 0)}
        for k in src:
            if k not in ("cpus", "memory") and src[k]:
                notes.add(f"deploy.resources.{part}.{k}", name, "not in the Swarm stack schema")
        if kept:
            out[part] = kept
    return out


def _deploy(svc: dict, name: str, notes: _Notes) -> dict:
    src = svc.get("deploy") or {}
    out: dict = {}
    for key in ("mode", "replicas", "labels", "update_config", "rollback_config",
                "restart_policy"):
        if src.get(key) not in (None, {}, []):
            out[key] = src[key]
    placement = {k: v for k, v in (src.get("placement") or {}).items()
                 if k in ("constraints", "preferences", "max_replicas_per_node") and v}
    if placement:
        out["placement"] = placement
    resources = _resources(src.get("resources") or {}, name, notes)
    if resources:
        out["resources"] = resources
    if src.get("endpoint_mode") not in (None, "dnsrr"):
        notes.add("deploy.endpoint_mode", name, "dnsrr here: there is no IPVS for a virtual IP")
    out["endpoint_mode"] = "dnsrr"
    restart = svc.get("restart")
    if restart and "restart_policy" not in out:
        policy = RESTART.get(restart)
        if policy is None and restart.startswith("on-failure"):
            policy = {"condition": "on-failure"}
            tries = restart.partition(":")[2]
            if tries.isdigit():
                policy["max_attempts"] = int(tries)
        if policy is not None:
            out["restart_policy"] = {**policy, "delay": "5s"}
            notes.add("restart", name, "translated to deploy.restart_policy")
    return out


def _inside(path: str, root: str) -> bool:
    return bool(root) and (path == root or path.startswith(root.rstrip("/") + "/"))


def _mounts(svc: dict, name: str, root: str, on_nodes: tuple[str, ...], notes: _Notes
            ) -> tuple[list, set[str]]:
    """Volumes and tmpfs mounts; returns them and the named volumes used."""
    out, named = [], set()
    for v in svc.get("volumes") or []:
        kind, source, target = v.get("type"), v.get("source"), v.get("target")
        if kind == "volume":
            mount = {"type": "volume", "source": source, "target": target}
            if source:
                named.add(source)
        elif kind == "bind":
            if _inside(str(source), root) and not any(_inside(str(source), p) for p in on_nodes):
                notes.add("bind mount of the checkout", name,
                          f"{source} is not on the nodes: dropped (ship it as a config in the "
                          "deploy overlay)")
                continue
            mount = {"type": "bind", "source": source, "target": target}
        elif kind == "tmpfs":
            mount = {"type": "tmpfs", "target": target}
        else:
            notes.add(f"{kind} mount", name, "not supported by Swarm services: dropped")
            continue
        if v.get("read_only"):
            mount["read_only"] = True
        out.append(mount)
    for target in svc.get("tmpfs") or []:
        out.append({"type": "tmpfs", "target": target.split(":", 1)[0]})
    if svc.get("shm_size"):
        # Swarm has no shm_size; a sized tmpfs on /dev/shm is the same thing.
        out.append({"type": "tmpfs", "target": "/dev/shm",  # noqa: S108
                     "tmpfs": {"size": int(svc["shm_size"])}})
    return out, named


def _ports(svc: dict, name: str, notes: _Notes) -> list[dict]:
    out = []
    for p in svc.get("ports") or []:
        published, host_ip = str(p.get("published") or ""), p.get("host_ip") or ""
        if host_ip not in ALL_INTERFACES:
            notes.add("ports", name, f"{host_ip}:{published} dropped: Swarm cannot bind an "
                      "address, so it would be open on every interface (publish it in the "
                      "deploy overlay if it must be)")
            continue
        if not published.isdigit():
            notes.add("ports", name, f"{published or 'an unpublished port'}->{p.get('target')} "
                      "dropped: Swarm publishes single ports")
            continue
        if p.get("mode") != "host":
            notes.add("ports", name, f"{published} published in host mode (no ingress mesh "
                      "without IPVS)")
        out.append({"target": int(p["target"]), "published": int(published),
                    "protocol": p.get("protocol") or "tcp", "mode": "host"})
    return out


def file_mode(value) -> int:
    """A secret's or config's mode: Compose 2.40 prints it as an octal string ("0400"),
    older versions as the number YAML made of it (256)."""
    if isinstance(value, str):
        return int(value, 8)
    return int(value)


def _refs(items, secrets: bool) -> list[dict]:
    """Secret targets are names under /run/secrets (as Swarm wants them); a config's
    target is its path."""
    out = []
    for ref in items or []:
        target = ref.get("target") or (ref["source"] if secrets else f"/{ref['source']}")
        if secrets and target.startswith(SECRETS_DIR):
            target = target[len(SECRETS_DIR):]
        item = {"source": ref["source"], "target": target,
                "mode": file_mode(ref["mode"]) if ref.get("mode") is not None else 0o444}
        for k in ("uid", "gid"):
            if ref.get(k) is not None:
                item[k] = str(ref[k])
        out.append(item)
    return out


def _networks(svc: dict) -> list | dict:
    nets = svc.get("networks") or {}
    if any((v or {}).get("aliases") for v in nets.values()):
        return {k: ({"aliases": v["aliases"]} if (v or {}).get("aliases") else None)
                for k, v in nets.items()}
    return sorted(nets)


def _health(svc: dict, name: str, notes: _Notes) -> dict | None:
    hc = svc.get("healthcheck")
    if not hc:
        return None
    for k in hc:
        if k not in HEALTH_KEYS:
            notes.add(f"healthcheck.{k}", name, "not in the Swarm stack schema")
    return {k: hc[k] for k in HEALTH_KEYS if k in hc}


class _Notes:
    """One line per (key, reason), listing the services it applies to."""

    def __init__(self):
        self.seen: dict[tuple[str, str], list[str]] = {}

    def add(self, key: str, service: str, reason: str) -> None:
        names = self.seen.setdefault((key, reason), [])
        if service not in names:
            names.append(service)

    def lines(self) -> list[str]:
        return [f"{key} ({', '.join(names)}): {reason}" for (key, reason), names in
                sorted(self.seen.items())]


def service(name: str, svc: dict, root: str, notes: _Notes, on_nodes: tuple[str, ...] = ()
            ) -> dict:
    if not svc.get("image"):
        raise OpsError(f"service {name} has no image: Swarm runs images, it never builds "
                       "(give it `image:` in the compose file)")
    out = {k: svc[k] for k in COPIED if svc.get(k) not in (None, [], {})}
    env = out.get("environment") or {}
    unset = sorted(k for k, v in env.items() if v is None)
    if unset:
        notes.add("environment", name, f"{', '.join(unset)} unset (no value in the variables): "
                  "dropped")
        out["environment"] = {k: v for k, v in env.items() if v is not None}
    for key in svc:
        if key in IGNORED and svc[key] not in (None, False, [], {}, ""):
            notes.add(key, name, IGNORED[key])
        elif key not in COPIED and key not in SILENT and key not in IGNORED:
            notes.add(key, name, "not in the Swarm stack schema: dropped")
    if svc.get("extra_hosts"):
        hosts = svc["extra_hosts"]
        items = hosts.items() if isinstance(hosts, dict) else (
            h.replace("=", ":", 1).split(":", 1) for h in hosts)
        out["extra_hosts"] = [f"{h}:{ip}" for h, ip in items]
    health = _health(svc, name, notes)
    if health:
        out["healthcheck"] = health
    nets = _networks(svc)
    if nets:
        out["networks"] = nets
    ports = _ports(svc, name, notes)
    if ports:
        out["ports"] = ports
    mounts, named = _mounts(svc, name, root, on_nodes, notes)
    if mounts:
        out["volumes"] = mounts
    if svc.get("secrets"):
        out["secrets"] = _refs(svc["secrets"], secrets=True)
    if svc.get("configs"):
        out["configs"] = _refs(svc["configs"], secrets=False)
    out["deploy"] = _deploy(svc, name, notes)
    placement = out["deploy"].get("placement") or {}
    if named and not placement.get("constraints"):
        out["deploy"]["placement"] = {**placement, "constraints": [ON_MANAGER]}
        notes.add("placement", name, "pinned to the manager: its named volumes are local to one "
                  "node")
    return out


def _source(key: str, spec: dict, what: str) -> Source:
    if spec.get("external"):
        return Source("external", spec.get("name") or key)
    for kind in ("environment", "file", "content"):
        if spec.get(kind) is not None:
            return Source(kind, str(spec[kind]))
    raise OpsError(f"{what} {key}: no source Swarm can use (environment, file, content or "
                   "external)")


def translate(model: dict, root: str = "", on_nodes: tuple[str, ...] = ()) -> Translation:
    """`root`: this checkout, whose paths do not exist on the nodes; `on_nodes`: paths
    that do all the same (the live-upstream directory of an engine-local Swarm)."""
    notes = _Notes()
    services = {n: service(n, s, root, notes, on_nodes)
                for n, s in sorted((model.get("services") or {}).items())}
    networks = {}
    for n, spec in (model.get("networks") or {}).items():
        spec = spec or {}
        if spec.get("external"):
            networks[n] = {"external": True, "name": spec.get("name") or n}
            continue
        net = {"driver": "overlay"}
        if spec.get("driver") not in (None, "bridge", "overlay"):
            notes.add(f"network {n}", "-", f"driver {spec['driver']} replaced by overlay")
        for k in ("internal", "attachable", "labels", "driver_opts"):
            if spec.get(k):
                net[k] = spec[k]
        networks[n] = net
    used_volumes = {m["source"] for s in services.values() for m in s.get("volumes", [])
                    if m["type"] == "volume"}
    volumes = {}
    for n, spec in (model.get("volumes") or {}).items():
        if n not in used_volumes:
            continue
        spec = spec or {}
        if spec.get("external"):
            volumes[n] = {"external": True, "name": spec.get("name") or n}
        else:
            volumes[n] = {k: spec[k] for k in ("driver", "driver_opts", "labels") if spec.get(k)}
    used = {kind: {r["source"] for s in services.values() for r in s.get(kind, [])}
            for kind in ("secrets", "configs")}
    secrets = {k: _source(k, v or {}, "secret") for k, v in (model.get("secrets") or {}).items()
               if k in used["secrets"]}
    configs = {k: _source(k, v or {}, "config") for k, v in (model.get("configs") or {}).items()
               if k in used["configs"]}
    for kind, declared in (("secret", secrets), ("config", configs)):
        missing = used[f"{kind}s"] - set(declared)
        if missing:
            raise OpsError(f"{kind}(s) {', '.join(sorted(missing))} used but not declared")
    return Translation(services, networks, volumes, secrets, configs, notes.lines())
