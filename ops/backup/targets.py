"""Which databases to back up: Postgres services of the Compose model (role `database`,
not opted out with the label `ops.backup: "false"`), and the databases inside each."""

from __future__ import annotations

from .. import docker_api
from ..commands import pg
from ..errors import OpsError
from ..parse import Model
from .pgexec import DbUnavailable, Target, retry_sql


def backup_services(model: Model, names=()) -> list[str]:
    if names:
        for n in names:
            svc = model.service(n)
            if svc.role != "database":
                raise OpsError(f"{n} is not a database service (role {svc.role or 'none'})")
        return list(names)
    return sorted(n for n, s in model.services.items()
                  if s.role == "database" and s.labels.get("ops.backup", "true") != "false")


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


def targets_for(model: Model, project: str, services=(), db: str | None = None,
                attempts: int = 3) -> list[Target]:
    out = []
    for service in backup_services(model, services):
        c = container_of(project, service)
        env = env_of(c)
        user = env.get("POSTGRES_USER") or "postgres"
        if db:
            dbs = [pg.check_db_name(db)]
        else:
            try:
                listed = retry_sql(c.id, user, env.get("POSTGRES_DB") or user,
                                   pg.LIST_DATABASES_SQL, attempts)
            except DbUnavailable as exc:
                raise DbUnavailable(f"{exc} (gave up after {attempts} attempts)") from exc
            dbs = [d for d in listed.split() if d] or [env.get("POSTGRES_DB") or user]
        image = (c.attrs.get("Config") or {}).get("Image") or c.image.tags[0]
        out += [Target(service, c.id, image, user, d) for d in dbs]
    return out
