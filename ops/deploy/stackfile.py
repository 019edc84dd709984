"""The Swarm stack files of a release, assembled from the translated Compose model (pure).
Three kinds of file share one stack namespace, so deploying one never touches another
(no --prune): `base` (data tier, cache, broker, gateway), one per color of the
blue-green service (`blue`, `green`), and `followers` (services running the app's image,
a worker say, updated once the switch succeeded and rolled back with it).

Secrets and configs are immutable on Swarm, so their names carry a hash of their
content: a changed value is a new object, never an update."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass

from ..commands.deploy import APP_SERVICE, COLORS, SERVICE
from ..scaling import MAX_REPLICAS
from .translate import Translation, repository

VERSION = "3.8"  # the schema every docker stack deploy since 19.03 validates


@dataclass(frozen=True)
class Release:
    app: str
    app_image: str  # repository of the blue-green service's image (registry-qualified)
    replicas: int  # tasks per color

    def app_ref(self, tag: str) -> str:
        return f"{self.app_image}:{tag}"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def versioned(app: str, key: str, value: str) -> str:
    return f"{app}_{key}_{content_hash(value)}"


def object_names(app: str, sources: dict, values: dict[str, str] | None) -> dict[str, str]:
    """Swarm names of secrets or configs: an existing (external) object keeps its name;
    any other is versioned by its value (`values=None`: the version masked, for display)."""
    return {k: (src.value if src.kind == "external"
                else f"{app}_{k}_********" if values is None else versioned(app, k, values[k]))
            for k, src in sources.items()}


def config_file(key: str) -> str:
    """Where a config's content sits in the release directory."""
    return f"config-{key}"


def _file(t: Translation, services: dict[str, dict], secrets: dict[str, str],
          configs: dict[str, str]) -> dict:
    """One stack file: `services` and exactly the networks, volumes, secrets and configs
    they use."""
    def used(kind: str) -> list[str]:
        return sorted({r["source"] for s in services.values() for r in s.get(kind, [])})

    nets = sorted({n for s in services.values() for n in (s.get("networks") or [])})
    vols = sorted({m["source"] for s in services.values() for m in s.get("volumes", [])
                   if m["type"] == "volume"})
    out = {"version": VERSION, "services": services}
    if nets:
        out["networks"] = {n: t.networks[n] for n in nets}
    if vols:
        out["volumes"] = {n: t.volumes[n] for n in vols}
    if used("secrets"):
        out["secrets"] = {k: {"external": True, "name": secrets[k]} for k in used("secrets")}
    if used("configs"):
        out["configs"] = {k: ({"external": True, "name": configs[k]}
                              if t.configs[k].kind == "external"
                              else {"name": configs[k], "file": f"./{config_file(k)}"})
                          for k in used("configs")}
    return out


def _tagged(svc: dict, image: str, tag: str, **labels) -> dict:
    svc = copy.deepcopy(svc)
    svc["image"] = image
    svc["deploy"]["labels"] = {**(svc["deploy"].get("labels") or {}), "ops.tag": tag, **labels}
    return svc


def color(t: Translation, rel: Release, which: str, tag: str, secrets: dict[str, str],
          configs: dict[str, str], replicas: int | None = None) -> dict:
    """One color of the blue-green service. Health-gated: a task counts as running only
    once healthy."""
    if which not in COLORS:
        raise ValueError(f"unknown color {which!r}")
    svc = _tagged(t.services[t.blue_green], rel.app_ref(tag), tag, **{"ops.color": which})
    svc["environment"] = {**(svc.get("environment") or {}), "APP_COLOR": which}
    svc["labels"] = {**(svc.get("labels") or {}), "ops.color": which}
    svc["deploy"]["replicas"] = rel.replicas if replicas is None else replicas
    return _file(t, {which: svc}, secrets, configs)


def followers(t: Translation, rel: Release, tag: str, secrets: dict[str, str],
              configs: dict[str, str]) -> dict | None:
    names = t.followers()
    if not names:
        return None
    services = {n: _tagged(t.services[n], rel.app_ref(tag), tag) for n in names}
    return _file(t, services, secrets, configs)


# Servers read their password secret only when their volume is first initialised; the
# password itself lives in their data (inv secrets.rotate changes it there).
SERVER_ROLES = ("database", "cache", "broker")
PINNED = "__pinned"  # a pinned reference's key in the stack file


def server_pins(previous_base: str, t: Translation, present: set[str]) -> dict[str, dict[str, str]]:
    """{server: {secret key: the version it runs with}} from the last base stack file,
    for versions that still exist: a server keeps them, so a
    rotated (or edited) value never restarts it."""
    try:
        previous = json.loads(previous_base) if previous_base.strip() else {}
    except ValueError:
        return {}
    names = {k: (v or {}).get("name") for k, v in (previous.get("secrets") or {}).items()}
    pins: dict[str, dict[str, str]] = {}
    for name in t.base():
        svc = t.services[name]
        if (svc.get("labels") or {}).get("ops.role") not in SERVER_ROLES:
            continue
        for ref in ((previous.get("services") or {}).get(name) or {}).get("secrets") or []:
            source = str(ref.get("source", ""))
            key = source.removesuffix(PINNED)
            version = names.get(source)
            if version in present and key in t.secrets and t.secrets[key].kind != "external":
                pins.setdefault(name, {})[key] = version
    return pins


def _pinned(svc: dict, pins: dict[str, str]) -> dict:
    svc = copy.deepcopy(svc)
    for ref in svc.get("secrets", []):
        if ref["source"] in pins:
            ref["source"] += PINNED
    return svc


def base(t: Translation, secrets: dict[str, str], configs: dict[str, str],
         pins: dict[str, dict[str, str]] | None = None) -> dict:
    """The data tier, cache, broker and gateway; `pins` (server_pins) keep the servers on
    the secret versions they run with, under keys of their own in the file."""
    pins = pins or {}
    services = {n: _pinned(t.services[n], pins[n]) if n in pins else t.services[n] for n in t.base()}
    extra = {f"{k}{PINNED}": v for p in pins.values() for k, v in p.items()}
    return _file(t, services, {**secrets, **extra}, configs)


def color_count(scaled: dict[str, int], default: int) -> int:
    """Tasks per color: the live color's count set by `inv scale` (kept under the name
    users give the colors), else deploy.replicas."""
    return scaled.get(APP_SERVICE, default)


def _rescaled(t: Translation, scaled: dict[str, int]) -> Translation:
    services = copy.deepcopy(t.services)
    for name, count in scaled.items():
        if name in services and name != t.blue_green and name != APP_SERVICE:
            services[name]["deploy"]["replicas"] = count
    return Translation(services, t.networks, t.volumes, t.secrets, t.configs, t.notes)


def parse_scaled(text: str) -> dict[str, int]:
    """The scale file (JSON {service: replicas}); anything malformed counts as unset."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and SERVICE.match(k)
            and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_REPLICAS}


@dataclass
class Plan:
    """What a deploy renders from: the translated model and the values of its secrets
    and configs (read on this machine; the values never enter a stack file)."""

    t: Translation
    rel: Release
    secret_values: dict[str, str] | None  # None: not read (display only)
    config_values: dict[str, str] | None

    def names(self) -> tuple[dict[str, str], dict[str, str]]:
        return (object_names(self.rel.app, self.t.secrets, self.secret_values),
                object_names(self.rel.app, self.t.configs, self.config_values))

    def files(self, which: str, tag: str, scaled: dict[str, int] | None = None,
              pins: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
        """Every file of a release directory, by name. `scaled`: replica counts set by
        `inv scale` (by service; the colors' under `api`), which win over the compose
        file's and deploy.replicas. `pins`: server_pins."""
        scaled = scaled or {}
        t = _rescaled(self.t, scaled)
        rel = self.rel
        secrets, configs = self.names()
        files = {"base.json": dump(base(t, secrets, configs, pins)),
                 f"{which}.json": dump(color(t, rel, which, tag, secrets, configs,
                                             color_count(scaled, rel.replicas)))}
        rest = followers(t, rel, tag, secrets, configs)
        if rest:
            files["followers.json"] = dump(rest)
        files.update(self.config_files())
        return files

    def config_files(self) -> dict[str, str]:
        """The configs' contents, beside the stack files that name them."""
        return {config_file(key): self.config_values[key] for key, src in self.t.configs.items()
                if src.kind != "external" and self.config_values is not None}


def base_waits(t: Translation) -> list[tuple[str, str, int]]:
    """(service, image, replicas) the base deploy waits for; global services excepted."""
    return [(n, t.services[n]["image"], int(t.services[n]["deploy"].get("replicas", 1)))
            for n in t.base() if t.services[n]["deploy"].get("mode", "replicated") == "replicated"]


def images(t: Translation, names: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Images other than the app's (or those of `names`), split by where they can run:
    (manager only, anywhere)."""
    if names is None:
        app = repository(t.services[t.blue_green]["image"])
        names = [n for n, s in t.services.items() if repository(s["image"]) != app]
    pinned, anywhere = set(), set()
    for name in names:
        (pinned if t.on_manager(name) else anywhere).add(t.services[name]["image"])
    return sorted(pinned - anywhere), sorted(anywhere)


def part(t: Translation, names: list[str], secrets: dict[str, str], configs: dict[str, str]
         ) -> dict:
    """The stack file of some services (the monitoring part), in the same namespace."""
    return _file(t, {n: t.services[n] for n in names}, secrets, configs)


def dump(stack: dict) -> str:
    """JSON is YAML: `docker stack deploy -c` reads it, and no YAML library is needed."""
    return json.dumps(stack, indent=2, sort_keys=True) + "\n"


def upstream(app: str, which: str, tag: str, port: int) -> str:
    """The live-upstream file the gateway includes; the first line is machine-readable."""
    if which not in COLORS:
        raise ValueError(f"unknown color {which!r}")
    return (f"# ops-deploy live={which} tag={tag} port={port}\n"
            f"set $api http://{app}_{which}:{port};\n")


def service_images(text: str) -> dict[str, str]:
    """{service: image} of a stack file (empty when there is none, or it is unreadable)."""
    try:
        services = (json.loads(text) or {}).get("services") or {} if text.strip() else {}
    except ValueError:
        return {}
    return {n: s.get("image", "") for n, s in sorted(services.items())}


def upstream_port(text: str) -> int | None:
    """The port an upstream file written by `upstream` points at."""
    first = (text or "").splitlines()[:1]
    for part in (first[0].split() if first else []):
        if part.startswith("port=") and part[5:].isdigit():
            return int(part[5:])
    return None


def stale_objects(listed: str, referenced: str, keep: set[str]) -> dict[str, list[str]]:
    """Secret and config versions (`kind name` lines) that no service references any
    more and that are not `keep` (the release just deployed). The idle color still
    references its own versions, so the rollback target keeps them. Nothing is stale
    when no reference could be read: an empty answer is not proof of disuse."""
    pairs = {tuple(line.split(None, 1)) for line in listed.splitlines() if line.strip()}
    used = {tuple(line.split(None, 1)) for line in referenced.splitlines() if line.strip()}
    if not used:
        return {}
    stale: dict[str, list[str]] = {}
    for kind, name in sorted(pairs - used):
        if name not in keep:
            stale.setdefault(kind, []).append(name)
    return stale
