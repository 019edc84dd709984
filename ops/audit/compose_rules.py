"""Pure checks of a Compose model: the dict `docker compose config --format json` prints
(or the file as written, when Compose cannot resolve it). Both the long and the short
syntax are read, so the plain-YAML fallback sees what Compose would."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..deploy.translate import ALL_INTERFACES
from .rules import Finding

DATA_ROLES = ("database", "cache", "broker")
_TIER_IMAGES = (
    ("database", re.compile(r"postgres|postgis|timescale|mysql|mariadb|mongo|cockroach|cassandra|"
                            r"clickhouse|influxdb|couchdb|neo4j|elasticsearch|opensearch|mssql")),
    ("cache", re.compile(r"redis|valkey|keydb|memcached|dragonfly")),
    ("broker", re.compile(r"rabbitmq|kafka|nats|activemq|artemis|zookeeper|mosquitto|emqx|pulsar")),
)
_CREDENTIAL_KEY = re.compile(r"(PASSWORD|PASSWD|_PASS$|^PASS$|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|"
                             r"ACCESS_?KEY|CREDENTIAL)", re.I)
_NOT_A_CREDENTIAL = re.compile(r"(_FILE|_PATH|_DIR|_LENGTH|_POLICY|_METHOD|_ENCRYPTION)$", re.I)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/\s@]+:(?P<pw>[^@\s/]+)@", re.I)
_HOSTISH_KEY = re.compile(r"(HOST|URL|URI|DSN|ADDR|ADDRESS|SERVER|ENDPOINT|BROKER|UPSTREAM)", re.I)
_INTERPOLATED = re.compile(r"^\$\{[^}]+\}$|^\$[A-Za-z_][A-Za-z0-9_]*$")
DANGEROUS_CAPS = {"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH",
                  "SYS_RAWIO", "SYS_BOOT", "SYS_TIME", "MAC_ADMIN", "MAC_OVERRIDE", "BPF",
                  "PERFMON", "SYSLOG"}
# What `docker stack deploy` ignores, and whether `inv deploy`'s translation takes care of
# it (translated or dropped on purpose) or the deployed service silently lacks it.
SWARM_IGNORED = {
    "build": True, "depends_on": True, "container_name": True, "restart": True,
    "profiles": True, "pull_policy": True, "links": True, "external_links": True,
    "shm_size": True, "security_opt": False, "privileged": False, "devices": False,
    "network_mode": False, "cgroup_parent": False, "userns_mode": False, "ipc": False,
    "pid": False, "mem_limit": False, "cpus": False,
}
_SWARM_DEPLOY_KEYS = ("placement", "mode", "update_config", "rollback_config", "endpoint_mode",
                      "restart_policy")

Locate = Callable[..., tuple[str, int]]  # (service, *keys) -> (file, line)


@dataclass
class Context:
    """What the checks need besides the model."""

    locate: Locate
    swarm: bool = False            # a Swarm stack (docker stack deploy reads it)
    translated: bool = False       # ...rendered through inv deploy's translation
    # Images built by this stack (service name and image reference -> from its Dockerfile):
    image_health: set = field(default_factory=set)   # ...that have a HEALTHCHECK
    image_user: dict = field(default_factory=dict)   # ...and the USER they run as
    built: set = field(default_factory=set)          # image references built here
    # Pulled images present on the local engine -> the user they run as ("" is root).
    pulled_user: dict = field(default_factory=dict)
    # Services whose image is not pulled here: whether they run as root is unknown (a
    # note, not a guess that would change with the machine's image cache).
    user_unknown: list = field(default_factory=list)


def built_here(svc: dict, ctx: Context) -> bool:
    """Built by this stack: its own `build`, or the image another service builds."""
    return "build" in svc or str(svc.get("image") or "") in ctx.built


# -- normalisers: the long syntax (compose config) and the short one (as written) -------
def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value if "=" in str(item) else None
        return out
    return {str(k): v for k, v in env.items()}


def labels_of(svc: dict) -> dict[str, str]:
    labels = svc.get("labels") or {}
    if isinstance(labels, list):
        return dict(str(x).partition("=")[::2] for x in labels)
    return {str(k): "" if v is None else str(v) for k, v in labels.items()}


def networks_of(svc: dict) -> list[str]:
    nets = svc.get("networks")
    if nets is None:
        return [] if svc.get("network_mode") else ["default"]
    return list(nets) if isinstance(nets, (list, dict)) else []


def depends_of(svc: dict) -> dict[str, str]:
    """dependency -> condition (`service_started` for the short syntax)."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {str(d): "service_started" for d in deps}
    return {str(k): (v or {}).get("condition", "service_started") for k, v in deps.items()}


@dataclass(frozen=True)
class Port:
    index: int
    host_ip: str
    published: str
    target: str


def ports_of(svc: dict) -> list[Port]:
    out = []
    for i, p in enumerate(svc.get("ports") or []):
        if isinstance(p, dict):
            out.append(Port(i, str(p.get("host_ip") or ""), str(p.get("published") or ""),
                            str(p.get("target") or "")))
            continue
        text = str(p).split("/")[0]
        ip = ""
        if text.startswith("["):  # [::1]:5432:5432
            ip, _, text = text[1:].partition("]:")
        parts = text.rsplit(":", 2)
        if len(parts) == 3:
            ip, published, target = parts
        elif len(parts) == 2:
            published, target = parts
        else:
            published, target = "", parts[0]
        out.append(Port(i, ip, published, target))
    return out


@dataclass(frozen=True)
class Mount:
    index: int
    type: str
    source: str
    target: str
    read_only: bool


def mounts_of(svc: dict, named: set[str]) -> list[Mount]:
    out = []
    for i, v in enumerate(svc.get("volumes") or []):
        if isinstance(v, dict):
            out.append(Mount(i, v.get("type", "volume"), str(v.get("source") or ""),
                             str(v.get("target") or ""), bool(v.get("read_only"))))
            continue
        parts = str(v).split(":")
        if len(parts) == 1:
            out.append(Mount(i, "volume", "", parts[0], False))
            continue
        source, target = parts[0], parts[1]
        ro = len(parts) > 2 and "ro" in parts[2].split(",")
        kind = "volume" if source in named or not source.startswith((".", "/", "~", "$")) else "bind"
        out.append(Mount(i, kind, source, target, ro))
    return out


# Admin UIs, exporters and clients named after the server they serve (mongo-express,
# kafka-ui, redis-insight, postgres-exporter): not the data tier themselves.
_TOOL_IMAGE = re.compile(r"express|[-_]?ui$|admin|insight|commander|exporter|kafdrop|akhq|"
                         r"console|dashboard|manager|browser|[-_]?web$")


_ADMIN_UI = re.compile(r"pgadmin|adminer|phpmyadmin|dbgate|cloudbeaver|pgweb")


def _image_name(svc: dict) -> str:
    return str(svc.get("image") or "").split("@")[0].rsplit("/", 1)[-1].split(":")[0].lower()


def admin_ui(svc: dict) -> bool:
    """A database/cache/broker admin UI (pgAdmin, Adminer, mongo-express, kafka-ui...)."""
    name = _image_name(svc)
    return bool(_ADMIN_UI.search(name) or (
        _TOOL_IMAGE.search(name) and any(p.search(name) for _, p in _TIER_IMAGES)))


def tier_of(svc: dict) -> str | None:
    """database / cache / broker: by the `ops.role` label, else by the image's name."""
    role = labels_of(svc).get("ops.role")
    if role:
        return role if role in DATA_ROLES else None
    name = _image_name(svc)
    if _TOOL_IMAGE.search(name):
        return None
    for tier, pattern in _TIER_IMAGES:
        if pattern.search(name):
            return tier
    return None


def is_app(svc: dict) -> bool:
    """One of the project's own stateless services: built here, or labelled so."""
    labels = labels_of(svc)
    return tier_of(svc) is None and (
        "build" in svc or labels.get("ops.role") in ("app", "worker") or "ops.deploy" in labels)


def serves_http(svc: dict) -> bool:
    labels = labels_of(svc)
    return is_app(svc) and (labels.get("ops.role") != "worker") and bool(
        svc.get("ports") or svc.get("expose") or "ops.http.port" in labels)


def meant_to_scale(svc: dict, raw: dict) -> bool:
    replicas = (svc.get("deploy") or {}).get("replicas")
    written = (raw.get("deploy") or {}).get("replicas") if isinstance(raw, dict) else None
    try:
        many = int(replicas) > 1
    except (TypeError, ValueError):
        many = False
    return many or "${" in str(written or "") or is_app(svc)


def is_swarm_stack(model: dict) -> bool:
    """A file written for `docker stack deploy`: Swarm-only deploy keys or overlay networks."""
    for svc in (model.get("services") or {}).values():
        if any(k in (svc.get("deploy") or {}) for k in _SWARM_DEPLOY_KEYS):
            return True
    return any((n or {}).get("driver") == "overlay" for n in (model.get("networks") or {}).values()
               if isinstance(n, dict))


# Distribution codenames: a tag that moves only across point releases (like `:15`).
_CODENAMES = re.compile(r"^(buster|bullseye|bookworm|trixie|focal|jammy|noble|el[789]|"
                        r"ubi[89]|alpine3\.\d+)(-slim)?$")


def image_refused(image: str) -> str | None:
    """Why Compose refuses an image reference (an empty one, an empty tag: a variable
    read as blank?), else None."""
    if not image.strip():
        return "is empty, which Compose refuses (a variable read as blank?)"
    name = image.rsplit("/", 1)[-1]
    if "@" not in name and name.endswith(":"):
        return "has an empty tag, which Docker refuses (a variable read as blank?)"
    return None


def image_floats(image: str) -> tuple[str, str] | None:
    """(severity, why) when an image reference is not pinned, else None: medium for no
    tag, :latest or a word tag; low for a major version or a distribution codename."""
    if not image or "@sha256:" in image or "$" in image or image_refused(image):
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return "medium", "has no tag (means :latest)"
    tag = name.split(":", 1)[1]
    if _CODENAMES.match(tag) or re.fullmatch(r"\d+(-[a-z]+)?", tag):
        return "low", f"floats across point releases (:{tag})"
    if tag == "latest" or not re.search(r"\d", tag):
        return "medium", f"uses the moving tag :{tag}"
    return None


def _health_test(svc: dict) -> list[str]:
    test = (svc.get("healthcheck") or {}).get("test")
    return [test] if isinstance(test, str) else [str(t) for t in (test or [])]


def check(model: dict, raw: dict, ctx: Context) -> list[Finding]:
    """Every compose rule over every service of the model."""
    services = model.get("services") or {}
    raws = (raw or {}).get("services") or {}
    named = set(model.get("volumes") or {})
    out: list[Finding] = []
    for name in services:
        svc = services[name] or {}
        out += _service(name, svc, raws.get(name) or {}, services, model, ctx)
    out += _shared_volumes(services, named, ctx)
    return out


def _service(name, svc, raw, services, model, ctx) -> list[Finding]:
    f: list[Finding] = []

    def add(rule, message, *keys, severity=""):
        file, line = ctx.locate(name, *keys)
        f.append(Finding(rule, message, file, line, name, severity))

    tier = tier_of(svc)
    restart = str(svc.get("restart") or "")
    one_shot = restart in ("no", "on-failure") or (
        (svc.get("deploy") or {}).get("restart_policy") or {}).get("condition") in ("none", "on-failure")
    health = svc.get("healthcheck")
    test = _health_test(svc)
    if (health or {}).get("disable") or test[:1] == ["NONE"]:
        add("OA102", f"service {name!r} disables its healthcheck", "healthcheck")
    elif not health and not one_shot and not (
            name in ctx.image_health or str(svc.get("image")) in ctx.image_health):
        extra = " (an HTTP app: check its /health endpoint)" if serves_http(svc) else ""
        add("OA101", f"service {name!r} has no healthcheck{extra}")

    deps = depends_of(svc)
    if not ctx.swarm:
        for dep, condition in deps.items():
            if condition not in ("service_healthy", "service_completed_successfully"):
                add("OA103", f"service {name!r} waits for {dep!r} only to start "
                             f"({condition}), not to be healthy", "depends_on", dep)
        env = env_of(svc)
        for key, value in env.items():
            host = _names_service(key, value, services, name)
            if host and host not in deps:
                add("OA104", f"service {name!r} connects to {host!r} ({key}) but does not depend "
                             "on it", "environment", key)

    resources = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    missing = [k for k, legacy in (("memory", "mem_limit"), ("cpus", "cpus"))
               if not resources.get(k) and not (not ctx.swarm and svc.get(legacy))]
    if missing:
        add("OA105", f"service {name!r} has no {' or '.join(missing)} limit", "deploy")

    if not ctx.swarm and not restart and not (svc.get("deploy") or {}).get("restart_policy"):
        add("OA106", f"service {name!r} has no restart policy")
    if ctx.swarm and not ctx.translated and restart:
        add("OA107", f"service {name!r} sets restart: {restart}, which docker stack deploy "
                     "ignores", "restart")

    logging = svc.get("logging") or {}
    driver = logging.get("driver") or "json-file"
    if driver == "none":
        add("OA403", f"service {name!r} discards its logs (logging driver none)", "logging")
    elif driver == "json-file" and not (logging.get("options") or {}).get("max-size"):
        add("OA108", f"service {name!r} logs to json-file without max-size",
            "logging")

    if ctx.swarm:
        for key, handled in SWARM_IGNORED.items():
            if svc.get(key) in (None, False, [], {}, ""):
                continue
            if not ctx.translated:
                add("OA111", f"service {name!r}: docker stack deploy ignores {key!r}", key)
            elif not handled and key != "security_opt":
                add("OA111", f"service {name!r}: {key!r} is dropped for Swarm, the deployed "
                             "service runs without it", key, severity="low")

    _credentials(name, svc, raw, add)
    exposed = tier or ("admin UI" if admin_ui(svc) else None)
    for p in ports_of(svc):
        if not (ctx.swarm or p.host_ip in ALL_INTERFACES):
            continue
        port = f"{p.published}->{p.target}" if p.published else f"{p.target} (a random host port)"
        if exposed:
            add("OA203", f"{exposed} {name!r} publishes {port} on all interfaces", "ports", p.index)
        elif labels_of(svc).get("ops.role") == "gateway":
            add("OA211", f"gateway {name!r} publishes {port} on all interfaces (the public "
                         "entry: intended where it faces users)", "ports", p.index, severity="low")
        else:
            add("OA211", f"service {name!r} publishes {port} on all interfaces", "ports", p.index)
    if svc.get("privileged"):
        add("OA204", f"service {name!r} runs privileged", "privileged")
    for m in mounts_of(svc, set(model.get("volumes") or {})):
        if m.type == "bind" and m.source.rstrip("/").endswith("docker.sock"):
            add("OA205", f"service {name!r} mounts the Docker socket ({m.source})", "volumes", m.index)
    for key in ("network_mode", "pid", "ipc"):
        if str(svc.get(key) or "") == "host":
            add("OA206", f"service {name!r} uses the host's {key.replace('_mode', '')} namespace", key)
    for i, cap in enumerate(svc.get("cap_add") or []):
        plain = str(cap).upper().removeprefix("CAP_")
        if plain in DANGEROUS_CAPS:
            add("OA207", f"service {name!r} adds capability {plain}", "cap_add", i)
    opts = [str(o).replace("=", ":").replace(" ", "") for o in svc.get("security_opt") or []]
    # Swarm services cannot set it at all (daemon.json "no-new-privileges": true can).
    if not ctx.swarm and not any(o in ("no-new-privileges", "no-new-privileges:true") for o in opts):
        add("OA208", f"service {name!r} does not set no-new-privileges",
            "security_opt")
    _user(name, svc, tier, ctx, add)
    if tier and not _internal(svc, model):
        add("OA210", f"{tier} {name!r} is on no internal network "
                     f"({', '.join(networks_of(svc)) or 'none'})", "networks")

    if meant_to_scale(svc, raw) and not tier:
        for p in ports_of(svc):
            if p.published and "-" not in p.published:
                add("OA301", f"service {name!r} is meant to scale but publishes fixed host port "
                             f"{p.published}", "ports", p.index)
        if svc.get("container_name") and not ctx.swarm:
            add("OA302", f"service {name!r} is meant to scale but has container_name "
                         f"{svc['container_name']!r}", "container_name")

    image = str(svc.get("image") or "")
    refused = image_refused(image) if "image" in svc and not svc.get("build") else None
    if refused:
        add("OA115", f"service {name!r}: image {image!r} {refused}", "image")
    elif not built_here(svc, ctx):
        floats = image_floats(image)
        if floats:
            add("OA114", f"service {name!r}: image {image} {floats[1]}", "image", severity=floats[0])

    if serves_http(svc):
        joined = " ".join(test)
        if health and not (health or {}).get("disable") and not re.search(r"https?://|/health", joined):
            add("OA401", f"app service {name!r} checks its process, not a health endpoint",
                "healthcheck", "test")
        labels = labels_of(svc)
        if not any(k.startswith(("prometheus.io/", "ops.metrics")) for k in labels):
            add("OA402", f"app service {name!r} has no prometheus.io/* (or ops.metrics.*) labels",
                "labels")
    return f


def _credentials(name, svc, raw, add):
    """OA201/OA202 on the values as written: interpolated ones come from the environment."""
    written = env_of(raw) if raw else env_of(svc)
    for key, value in written.items():
        if value in (None, ""):
            continue
        text = str(value).strip()
        if _CREDENTIAL_KEY.search(key) and not _NOT_A_CREDENTIAL.search(key) \
                and not _INTERPOLATED.match(text) and not text.startswith("/run/secrets/"):
            add("OA201", f"service {name!r}: {key} is a literal value", "environment", key)
            continue
        m = _URL_PASSWORD.search(text)
        if m and not m.group("pw").startswith("$"):
            add("OA202", f"service {name!r}: {key} carries a password in a URL", "environment", key)
    args = ((raw or svc).get("build") or {})
    args = args.get("args") if isinstance(args, dict) else None
    for key, value in (env_of({"environment": args}) if args else {}).items():
        if value and _CREDENTIAL_KEY.search(key) and not _INTERPOLATED.match(str(value).strip()):
            add("OA201", f"service {name!r}: build arg {key} is a literal value (and stays in the "
                         "image's history)", "build", "args", key)


def _user(name, svc, tier, ctx, add):
    user = str(svc.get("user") or "").strip()
    if user:
        if user.split(":")[0] in ("root", "0"):
            add("OA209", f"service {name!r} runs as {user}", "user", severity="high")
        return
    if built_here(svc, ctx) or tier:
        # Its Dockerfile's USER is checked there; data-tier official images step down to
        # their own user in the entrypoint.
        return
    image = str(svc.get("image") or "")
    if image in ctx.pulled_user:
        image_user = ctx.pulled_user[image].strip()
        if image_user and image_user.split(":")[0] not in ("root", "0"):
            return  # the image itself runs as a non-root user
        add("OA209", f"service {name!r} runs as root (image {image} sets no other USER); "
                     "set user:", severity="low")
        return
    ctx.user_unknown.append(name)


def _internal(svc, model) -> bool:
    nets = model.get("networks") or {}
    return any(((nets.get(n) or {}).get("internal") is True) for n in networks_of(svc))


_HOST_PIECES = re.compile(r"[/@,\s]")
_PORT_SUFFIX = re.compile(r"(.*?)(:\d+)?")


def host_tokens(text: str) -> set[str]:
    """What in a value could name a host: each piece between / @ , or white space, cut at
    `?` and stripped of a `:port` (`postgres://u:p@db:5432/app?x` -> db among them)."""
    return {_PORT_SUFFIX.fullmatch(piece.split("?", 1)[0]).group(1)
            for piece in _HOST_PIECES.split(text)}


def _names_service(key, value, services, me) -> str | None:
    """The other service this variable points at (as a host), or None: the first of
    `services` among the value's host tokens (a set: 500 services stay linear)."""
    if value is None or not _HOSTISH_KEY.search(key):
        return None
    tokens = host_tokens(str(value))
    return next((other for other in services if other != me and other in tokens), None)


def _shared_volumes(services, named, ctx) -> list[Finding]:
    users: dict[str, list[tuple[str, Mount]]] = {}
    out = []
    for name, svc in services.items():
        seen: dict[str, Mount] = {}
        for m in mounts_of(svc or {}, named):
            if m.type != "volume" or not m.source or m.source not in named:
                continue
            if m.source in seen:
                file, line = ctx.locate(name, "volumes", m.index)
                out.append(Finding("OA113", f"service {name!r} mounts volume {m.source!r} twice "
                                            f"({seen[m.source].target} and {m.target})",
                                   file, line, name))
                continue
            seen[m.source] = m
            users.setdefault(m.source, []).append((name, m))
    if ctx.swarm:
        return out  # a named volume is per node on Swarm: two services never share its files
    for volume, mounts in users.items():
        if len(mounts) < 2:
            continue
        writers = [s for s, m in mounts if not m.read_only]
        name, m = mounts[1]
        file, line = ctx.locate(name, "volumes", m.index)
        who = ", ".join(f"{s}{'' if not mm.read_only else ' (ro)'}" for s, mm in mounts)
        out.append(Finding("OA112", f"volume {volume!r} is mounted by {who}", file, line, name,
                           "high" if len(writers) > 1 else "medium"))
    return out
