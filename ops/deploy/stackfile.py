"""The Swarm stack, rendered as data (pure). Two kinds of file share one stack namespace:
`base` (networks, app-db, redis, gateway) and one file per color (`blue`, `green`).
Deploying a color file touches that color only (no --prune): the live color's spec is
never re-sent during a deploy.

No IPVS on some kernels (and here): every service uses `endpoint_mode: dnsrr` (no VIP)
and the gateway publishes its port in host mode (no ingress mesh). Secrets and the
nginx config are immutable on Swarm, so their names carry a hash of their content."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..commands.deploy import COLORS, LIVE_IN_GATEWAY, NGINX_CONF_IN_GATEWAY

SECRETS = ("app_db_password", "redis_password")
VOLUMES = ("app-db-data", "redis-data")
SECRET_VARS = {"app_db_password": "APP_DB_PASSWORD", "redis_password": "REDIS_PASSWORD"}
API_PORT = 8000
GATEWAY_TARGET_PORT = 8080


@dataclass(frozen=True)
class Release:
    app: str
    api_image: str  # repository, without tag
    postgres_image: str
    redis_image: str
    nginx_image: str
    replicas: int
    gateway_port: int
    live_dir: str  # on the manager, mounted into the gateway
    db_user: str = "app"
    db_name: str = "app"

    def api_ref(self, tag: str) -> str:
        return f"{self.api_image}:{tag}"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def secret_names(app: str, values: dict[str, str]) -> dict[str, str]:
    """Versioned Swarm secret names: a changed value is a new secret, never an update."""
    return {key: f"{app}_{key}_{content_hash(values[key])}" for key in SECRETS}


def config_name(app: str, nginx_conf: str) -> str:
    return f"{app}_gateway_conf_{content_hash(nginx_conf)}"


_LOGGING = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
_NETWORKS = {"edge": {"driver": "overlay"}, "backend": {"driver": "overlay"}}
_TMP = {"type": "tmpfs", "target": "/tmp"}  # noqa: S108 - a path inside the container
_ON_MANAGER = {"constraints": ["node.role == manager"]}


def _secrets_section(names: dict[str, str], used) -> dict:
    return {k: {"external": True, "name": names[k]} for k in used}


def _secret_refs(used) -> list[dict]:
    return [{"source": k, "target": k, "mode": 0o444} for k in used]


def _health(test: list, start_period: str, interval: str = "5s", timeout: str = "3s",
            retries: int = 5) -> dict:
    return {"test": test, "interval": interval, "timeout": timeout, "retries": retries,
            "start_period": start_period}


def _on_manager(cpus: str, memory: str, **extra) -> dict:
    """Deploy settings of a service pinned to the manager (no VIP: dnsrr)."""
    return {"endpoint_mode": "dnsrr", "placement": _ON_MANAGER,
            "resources": {"limits": {"cpus": cpus, "memory": memory}}, **extra}


def base(rel: Release, secrets: dict[str, str], nginx_config: str) -> dict:
    """Networks, the database, redis and the gateway (pinned to the manager: its volumes,
    its host-mode port and the directory holding the live upstream are there)."""
    postgres = {
        "image": rel.postgres_image,
        "labels": {"ops.role": "database"},  # what `inv health` checks it with
        "environment": {"POSTGRES_USER": rel.db_user, "POSTGRES_DB": rel.db_name,
                        "POSTGRES_PASSWORD_FILE": "/run/secrets/app_db_password"},
        "secrets": _secret_refs(["app_db_password"]),
        "volumes": ["app-db-data:/var/lib/postgresql/data"],
        "networks": ["backend"],
        "logging": _LOGGING,
        "stop_grace_period": "30s",
        "healthcheck": _health(["CMD-SHELL", 'pg_isready -q -h 127.0.0.1 -U "$$POSTGRES_USER" '
                                '-d "$$POSTGRES_DB"'], "30s"),
        "deploy": _on_manager("1.0", "512M"),
    }
    redis = {
        "image": rel.redis_image,
        "labels": {"ops.role": "cache"},
        "user": "redis",
        "environment": {"REDIS_PASSWORD_FILE": "/run/secrets/redis_password"},
        # The password goes into a config file on a tmpfs, not onto the command line.
        "command": ["sh", "-c", "umask 077 && printf 'requirepass %s\\n' "
                    "\"$$(cat \"$$REDIS_PASSWORD_FILE\")\" > /tmp/redis.conf && "
                    "exec redis-server /tmp/redis.conf --appendonly yes --protected-mode no"],
        "secrets": _secret_refs(["redis_password"]),
        "volumes": ["redis-data:/data", _TMP],
        "networks": ["backend"],
        "logging": _LOGGING,
        "healthcheck": _health(["CMD-SHELL", 'REDISCLI_AUTH="$$(cat "$$REDIS_PASSWORD_FILE")" '
                                "redis-cli ping | grep -q PONG"], "10s"),
        "deploy": _on_manager("0.5", "256M"),
    }
    gateway = {
        "image": rel.nginx_image,
        "labels": {"ops.role": "gateway"},
        "user": "101:101",
        "command": ["nginx", "-c", NGINX_CONF_IN_GATEWAY, "-g", "daemon off;"],
        "read_only": True,
        "cap_drop": ["ALL"],
        "ports": [{"target": GATEWAY_TARGET_PORT, "published": rel.gateway_port,
                   "protocol": "tcp", "mode": "host"}],
        "configs": [{"source": "gateway_conf", "target": NGINX_CONF_IN_GATEWAY, "mode": 0o444}],
        # The directory, not the file: the deploy's atomic rename stays visible inside.
        "volumes": [{"type": "bind", "source": rel.live_dir, "target": LIVE_IN_GATEWAY,
                     "read_only": True},
                    _TMP],
        "networks": ["edge"],
        "logging": _LOGGING,
        "healthcheck": _health(["CMD", "curl", "-fsS", "-o", "/dev/null",
                                f"http://127.0.0.1:{GATEWAY_TARGET_PORT}/gateway/health"], "5s",
                               retries=3),
        # A host-mode port cannot be held twice: the old task stops first.
        "deploy": _on_manager("0.5", "128M", update_config={"order": "stop-first",
                                                            "failure_action": "rollback"}),
    }
    return {
        "version": "3.8",
        "services": {"app-db": postgres, "redis": redis, "gateway": gateway},
        "networks": _NETWORKS,
        "volumes": {name: {} for name in VOLUMES},
        "secrets": _secrets_section(secrets, SECRETS),
        "configs": {"gateway_conf": {"name": nginx_config, "file": "./nginx.conf"}},
    }


def color(rel: Release, which: str, tag: str, secrets: dict[str, str],
          replicas: int | None = None) -> dict:
    """One color of the api. Health-gated: a task counts as running only once healthy."""
    if which not in COLORS:
        raise ValueError(f"unknown color {which!r}")
    api = {
        "image": rel.api_ref(tag),
        "environment": {
            "APP_COLOR": which, "API_DATABASES": "app", "APP_DB_HOST": "app-db",
            "APP_DB_NAME": rel.db_name, "APP_DB_USER": rel.db_user,
            "APP_DB_PASSWORD_FILE": "/run/secrets/app_db_password",
            "REDIS_HOST": "redis", "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
        },
        "secrets": _secret_refs(SECRETS),
        "cap_drop": ["ALL"],
        "volumes": [_TMP],
        "networks": ["backend", "edge"],
        "logging": _LOGGING,
        "stop_grace_period": "20s",
        "labels": {"ops.role": "app", "ops.color": which},
        "healthcheck": _health(["CMD", "python3", "-c", "import sys,urllib.request as u; sys.exit(0 if "
                                f"u.urlopen('http://127.0.0.1:{API_PORT}/health/ready', timeout=2)"
                                ".status == 200 else 1)"], "10s", interval="2s", timeout="2s",
                               retries=3),
        "deploy": {
            "replicas": rel.replicas if replicas is None else replicas,
            "endpoint_mode": "dnsrr",
            "labels": {"ops.color": which, "ops.tag": tag},
            # The idle color serves nobody while it is updated: all tasks at once.
            "update_config": {"parallelism": 0, "order": "start-first",
                              "failure_action": "pause", "monitor": "5s"},
            "restart_policy": {"condition": "any", "delay": "2s"},
            "resources": {"limits": {"cpus": "0.5", "memory": "256M"}},
        },
    }
    return {"version": "3.8", "services": {which: api}, "networks": _NETWORKS,
            "secrets": _secrets_section(secrets, SECRETS)}


def dump(stack: dict) -> str:
    """JSON is YAML: `docker stack deploy -c` reads it, and no YAML library is needed."""
    return json.dumps(stack, indent=2, sort_keys=True) + "\n"


def upstream(app: str, which: str, tag: str) -> str:
    """The live-upstream file the gateway includes; the first line is machine-readable."""
    if which not in COLORS:
        raise ValueError(f"unknown color {which!r}")
    return (f"# ops-deploy live={which} tag={tag}\n"
            f"set $api http://{app}_{which}:{API_PORT};\n")


def parse_upstream(text: str) -> tuple[str, str] | None:
    """(color, tag) from an upstream file written by `upstream`, else None."""
    first = (text or "").splitlines()[:1]
    if not first or not first[0].startswith("# ops-deploy "):
        return None
    fields = dict(p.split("=", 1) for p in first[0][len("# ops-deploy "):].split() if "=" in p)
    if fields.get("live") not in COLORS or not fields.get("tag"):
        return None
    return fields["live"], fields["tag"]


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
