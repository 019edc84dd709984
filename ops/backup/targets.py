"""Which databases to back up: Postgres services of the environment (role `database`,
not opted out with the label `ops.backup: "false"`), and the databases inside each.

Discovery never stops at the first unreachable service: each one that cannot be
reached (no container, a server that will not answer) is returned as `Unreachable`,
so the others are still backed up and its failure is still recorded."""

from __future__ import annotations

from dataclasses import dataclass

from .. import docker_api
from ..commands import pg
from ..errors import OpsError
from ..facts.compose import Model
from .pgexec import Database, DbUnavailable, retry_sql


@dataclass(frozen=True)
class Unreachable:
    service: str
    dbs: tuple[str, ...]  # the databases it is known to hold (for the failure's record)
    error: OpsError


def backup_services(roles: dict[str, dict], names=()) -> list[str]:
    """`roles`: service -> its labels. The named services (each must be a database), or
    every database service not opted out."""
    if names:
        for n in names:
            if n not in roles:
                raise OpsError(f"unknown service {n!r} (known: {', '.join(sorted(roles))})")
            role = roles[n].get("ops.role", "")
            if role != "database":
                raise OpsError(f"{n} is not a database service (role {role or 'none'})")
        return list(names)
    return sorted(n for n, labels in roles.items()
                  if labels.get("ops.role") == "database" and labels.get("ops.backup", "true") != "false")


def model_roles(model: Model) -> dict[str, dict]:
    return {n: {**s.labels, "ops.role": s.role or ""} for n, s in model.services.items()}


def container_of(project: str, service: str):
    """The service's container (running preferred), or a clear error."""
    found = [c for c in docker_api.project_containers(project)
             if c.labels.get("com.docker.compose.service") == service]
    if not found:
        raise OpsError(f"{service}: no container (is the stack up? `inv up`)")
    found.sort(key=lambda c: (c.status != "running", c.name))
    return found[0]


def env_of(container) -> dict[str, str]:
    pairs = (e.split("=", 1) for e in (container.attrs.get("Config") or {}).get("Env") or [])
    return {k: v for k, v in pairs}


def discover(site, services=(), db: str | None = None, attempts: int = 3,
             known=lambda service: ()) -> tuple[list[Database], list[Unreachable]]:
    """Every database of the chosen services, as far as each can be reached.
    `known(service)`: databases it had before (their backup directories), named in an
    Unreachable so that each one's failed run is recorded."""
    found, unreachable = [], []
    for service in backup_services(site.roles(), services):
        try:
            where = site.locate(service)
            user = where.env.get("POSTGRES_USER") or "postgres"
            if db:
                dbs = [pg.check_db_name(db)]
            else:
                try:
                    listed = retry_sql(where.container, user, where.env.get("POSTGRES_DB") or user,
                                       pg.LIST_DATABASES_SQL, attempts)
                except DbUnavailable as exc:
                    raise DbUnavailable(f"{exc} (gave up after {attempts} attempts)") from exc
                dbs = [d for d in listed.split() if d] or [where.env.get("POSTGRES_DB") or user]
        except OpsError as exc:
            named = [db] if db else list(known(service)) or [site.default_db(service)]
            unreachable.append(Unreachable(service, tuple(named), exc))
            continue
        found += [Database(service, where.container, where.image, user, d) for d in dbs]
    return found, unreachable
