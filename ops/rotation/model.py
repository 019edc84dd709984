"""Which secrets can be rotated, from the Compose model (pure): a password read by
exactly one server (a service whose ops.role is database, cache or broker) and by any
number of clients, its value taken from a variable (.env or .env.<env>)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .servers import ROLES, Server

# The account each kind of server's secret is the password of (the official images'
# variables; Redis: the ACL's default user, which clients AUTH as).
USER_VARIABLE = {"database": "POSTGRES_USER", "broker": "RABBITMQ_DEFAULT_USER"}


@dataclass(frozen=True)
class Rotation:
    key: str  # the secret, as compose.yaml names it
    variable: str  # the variable its value comes from
    server: Server
    clients: tuple[str, ...]  # every other service that reads it


def _uses(svc: Mapping) -> set[str]:
    return {ref["source"] if isinstance(ref, Mapping) else str(ref) for ref in svc.get("secrets") or []}


def _env(svc: Mapping) -> dict[str, str]:
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw if "=" in item)
    return {k: str(v) for k, v in raw.items() if v is not None}


def rotations(config: Mapping) -> dict[str, Rotation | str]:
    """{secret: Rotation, or why it cannot be rotated} for every secret of the model
    (`docker compose config --format json`, every profile)."""
    services = config.get("services") or {}
    out: dict[str, Rotation | str] = {}
    for key, spec in sorted((config.get("secrets") or {}).items()):
        users = sorted(n for n, s in services.items() if key in _uses(s))
        servers = [n for n in users if (services[n].get("labels") or {}).get("ops.role") in ROLES]
        if not (spec or {}).get("environment"):
            out[key] = "its value is a file or an existing Swarm secret: rotate it at its source"
            continue
        if len(servers) != 1:
            out[key] = ("no server reads it (a database, cache or broker)" if not servers else
                        f"several servers read it ({', '.join(servers)})")
            continue
        name = servers[0]
        svc = services[name]
        role = svc["labels"]["ops.role"]
        env = _env(svc)
        user = env.get(USER_VARIABLE.get(role, ""), "") if role in USER_VARIABLE else "default"
        if not user:
            out[key] = f"{name} does not say its user ({USER_VARIABLE[role]})"
            continue
        server = Server(role, name, user, env.get("POSTGRES_DB", "") if role == "database" else "")
        out[key] = Rotation(key, spec["environment"], server, tuple(n for n in users if n != name))
    return out


def pick(config: Mapping, key: str) -> Rotation:
    """The rotation of `key`, as compose.yaml names the secret (`app_db_password`) or as
    .env names its variable (`APP_DB_PASSWORD`); ValueError naming the rotatable ones
    otherwise."""
    found = rotations(config)
    ok = sorted(k for k, r in found.items() if isinstance(r, Rotation))
    if key not in found:
        by_variable = [k for k, r in found.items() if isinstance(r, Rotation) and r.variable == key]
        key = by_variable[0] if len(by_variable) == 1 else key
    if key not in found:
        raise ValueError(f"unknown secret {key!r} (rotatable: {', '.join(ok) or 'none'})")
    if not isinstance(found[key], Rotation):
        raise ValueError(f"secret {key!r} cannot be rotated here: {found[key]} "
                         f"(rotatable: {', '.join(ok) or 'none'})")
    return found[key]
