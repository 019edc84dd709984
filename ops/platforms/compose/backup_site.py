"""Where the local Compose project's databases are, for the db.* operations
(ops.platforms.base.BackupSite): checks run inside the database's own container."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from ...backup import targets
from ...containers import Container
from ...errors import OpsError
from ...runtime.runner import LOCAL
from ..base import Located


class ComposeSite:
    """The local Compose project: checks run inside the database's own container."""

    def __init__(self, stack):
        self.stack = stack
        self.env = stack.settings.env

    def roles(self) -> dict[str, dict]:
        return targets.model_roles(self.stack.model)

    def default_db(self, service: str) -> str:
        try:
            env = targets.env_of(targets.container_of(self.stack.settings.project, service))
        except OpsError:
            return "postgres"
        return env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres"

    def locate(self, service: str) -> Located:
        c = targets.container_of(self.stack.settings.project, service)
        image = (c.attrs.get("Config") or {}).get("Image") or c.image.tags[0]
        return Located(Container(c.id), targets.env_of(c), image)

    def checker(self, service: str, image: str | None):
        return self.locate(service).container

    def drill_machine(self, where: str, image: str | None):
        return LOCAL

    def manager_lock(self, service: str, db: str):
        return nullcontext()

    def publish_metrics(self, path: Path) -> None:
        """The local node-exporter reads BACKUP_DIR/metrics itself."""

    def close(self) -> None:
        pass
