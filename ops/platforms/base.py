"""The declared interfaces a kind of environment implements (one package per kind under
ops/platforms/), and the refusals every kind shares.

A task opens the platform of `--env` (`ops.platforms.open_platform`) and calls its
methods; it never asks which kind it has. What a kind cannot do (`inv up` on a Swarm,
`inv deploy` on the Compose stack) is refused by the platform itself, in one line that
names what to use instead, before anything connects or changes.

Features are written once against these interfaces: backups (`BackupSite`), secret
rotation (`ops.rotation.protocol.Place`), monitoring (`Monitoring`), health
(`Platform.health`). Adding a kind (Kubernetes, Nomad) means adding a package that
implements `Platform` and registering it in `ops.platforms.KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import USAGE, OpsError


@dataclass(frozen=True)
class Listing:
    """What `inv ps` shows: JSON rows, the same as a table (header first), notes after
    the table, and what to say when there is nothing."""

    rows: list[dict]
    table: list[tuple[str, ...]]
    notes: list[str] = field(default_factory=list)
    empty: str = "nothing running"


@dataclass(frozen=True)
class ConfigView:
    """What `inv config` shows besides the variables: `head` for --json, `lines` before
    the variables and `after` them (text)."""

    head: dict
    lines: list[str]
    after: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Located:
    """A database service's running container, its environment and image."""

    container: Any  # ops.containers.Container
    env: dict[str, str]
    image: str


class BackupSite(Protocol):
    """Where an environment's databases are, for the db.* operations (ops.backup)."""

    env: str

    def roles(self) -> dict[str, dict]: ...
    def default_db(self, service: str) -> str: ...
    def locate(self, service: str) -> Located: ...
    def checker(self, service: str, image: str | None): ...
    def drill_machine(self, where: str, image: str | None): ...
    def manager_lock(self, service: str, db: str) -> AbstractContextManager: ...
    def publish_metrics(self, path) -> None: ...
    def close(self) -> None: ...


class Monitoring(Protocol):
    """Prometheus, Alertmanager and the exporters of one environment."""

    m: Any  # ops.monitoring.settings.Monitoring
    tunnelled: bool  # the UIs are reached through a tunnel that lives as long as the task
    grafana: bool

    def up(self, timeout: float = ...) -> list[str]: ...
    def down(self) -> list[str]: ...
    def settle(self, timeout: float) -> tuple[bool, str]: ...
    def url(self, service: str, port: int) -> str: ...
    def targets(self) -> Any: ...
    def alerts(self) -> Any: ...
    def jobs(self) -> set[str]: ...
    def close(self) -> None: ...


class Deployer(Protocol):
    """Releases of the app onto an environment: deploy, rollback and their state."""

    app: str

    def deploy(self, tag: str | None) -> dict: ...
    def rollback(self, wait_followers: float | None = None, to: str | None = None) -> dict: ...
    def finish(self) -> dict: ...
    def status(self) -> dict: ...
    def history(self, lines: int) -> list[dict]: ...
    def remove(self, volumes: bool = False) -> list[str]: ...
    def unlock(self) -> dict | None: ...


class Platform(Protocol):
    """One environment of one kind: its stack's operations and the features' places."""

    env: str  # the --env name
    kind: str
    settings: Any  # ops.config.Settings

    # -- the stack's lifecycle (a kind that deploys instead refuses these) -------------
    def up(self, build: bool, timeout: float | None) -> float: ...
    def migrate(self, allow_breaking: bool) -> dict: ...
    def maintenance(self, on: bool, message: str | None, retry_after: int) -> dict: ...
    def maintenance_state(self) -> dict: ...
    def prune_images(self, keep: int) -> dict: ...
    def down(self, volumes: bool, ask: Callable[[str], None] | None) -> None: ...
    def build(self, services: list[str], no_cache: bool) -> list[str]: ...
    def clean(self) -> None: ...
    def gateway_url(self) -> str | None: ...
    stack_name: str

    # -- reads and one-off actions on what runs ------------------------------------------
    def ps(self) -> Listing: ...
    def health(self) -> list: ...
    def logs(self, services: list[str], follow: bool, tail: str | None, since: str | None,
             timestamps: bool) -> None: ...
    def search_logs(self, services: list[str], text: str, tail: str | None,
                    since: str | None) -> list: ...
    def exec(self, service: str, argv: list[str], index: int, tty: bool) -> int: ...
    def scale(self, spec: str, timeout: float | None) -> dict: ...
    def config_view(self) -> ConfigView: ...
    def tls(self): ...

    # -- the features' places ------------------------------------------------------------
    def backup_site(self) -> BackupSite: ...
    def monitoring(self, m) -> Monitoring: ...
    def stack_config(self) -> dict: ...
    def check_ready(self) -> None: ...
    def rotate(self, rotation, apply: Callable[[Any], dict]) -> dict: ...
    def deployer(self, task: str) -> Deployer: ...
    def ssh_hosts(self, task: str): ...
    def init_cluster(self) -> list[dict]: ...
    def prune_nodes(self) -> list[str]: ...
    def audit_input(self): ...
    def plan_entry(self): ...
    def close(self) -> None: ...


class OnStack:
    """The reads and one-off actions a kind answers through its stack object (Compose's
    Stack, Swarm's SwarmStack), which a platform opens on demand as `self.stack`."""

    stack: Any

    def logs(self, services, follow=False, tail=None, since=None, timestamps=False) -> None:
        self.stack.logs(services, follow=follow, tail=tail, since=since, timestamps=timestamps)

    def search_logs(self, services, text: str, tail=None, since=None) -> list:
        return self.stack.search_logs(services, text, tail=tail, since=since)

    def exec(self, service: str, argv: list[str], index: int = 1, tty: bool = False) -> int:
        return self.stack.exec(service, argv, index=index, tty=tty)

    def scale(self, spec: str, timeout: float | None = None) -> dict:
        return self.stack.scale(spec, timeout=timeout)


class Refusing:
    """What a kind does not do: the one-line refusal (exit 2) naming what to use instead.

    A platform subclasses this, fills `instead` ({task family: hint}, `{env}` the
    environment's name) and overrides what it supports; everything else refuses."""

    env: str
    description: str = "an environment"
    instead: Mapping[str, str] = {}

    def refuse(self, task: str, family: str | None = None):
        hint = self.instead.get(family or task.split(".")[0]) or self.instead.get(task)
        what = f"`inv {task}` does not act on {self.env!r} ({self.description})"
        raise OpsError(what + (f": {hint.format(env=self.env)}" if hint else ""), code=USAGE)

    def up(self, build: bool = False, timeout: float | None = None) -> float:
        self.refuse("up")

    def down(self, volumes: bool = False, ask=None) -> None:
        self.refuse("down")

    def migrate(self, allow_breaking: bool = False) -> dict:
        self.refuse("migrate")

    def maintenance(self, on: bool, message: str | None = None, retry_after: int = 300) -> dict:
        self.refuse(f"maintenance.{'on' if on else 'off'}", "maintenance")

    def maintenance_state(self) -> dict:
        self.refuse("maintenance.status", "maintenance")

    def prune_images(self, keep: int) -> dict:
        self.refuse("images.prune", "prune")

    def build(self, services=(), no_cache: bool = False) -> list[str]:
        self.refuse("build")

    def clean(self) -> None:
        self.refuse("clean")

    def deployer(self, task: str = "deploy"):
        self.refuse(task, "deploy")

    def ssh_hosts(self, task: str):
        self.refuse(task, "hosts")

    def init_cluster(self) -> list[dict]:
        self.refuse("swarm.init", "swarm")

    def prune_nodes(self) -> list[str]:
        self.refuse("swarm.prune", "swarm")

    def check_ready(self) -> None:
        """Nothing to check before a change by default."""

    def close(self) -> None:
        """Nothing held open by default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

