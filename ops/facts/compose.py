"""Pure parsers of Docker Compose output: the project model (`config --format json`),
its containers (`ps --format json`) and what a server's log says of refused logins."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import OpsError
from .values import parse_duration

# Roles whose services hold state: never scaled, never moved like the app.
STATEFUL_ROLES = {"database", "cache", "broker", "queue"}


@dataclass(frozen=True)
class Healthcheck:
    interval: float = 30.0  # Docker's defaults when a field is unset
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    disabled: bool = False

    def budget(self) -> float:
        """Worst case from start to a verdict: start period, then `retries` probes."""
        if self.disabled:
            return 0.0
        return self.start_period + self.retries * (self.interval + self.timeout)


@dataclass(frozen=True)
class ComposeService:
    name: str
    image: str = ""
    labels: dict = field(default_factory=dict)
    container_name: str | None = None
    published_ports: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    healthcheck: Healthcheck | None = None
    replicas: int = 1
    has_build: bool = False

    @property
    def role(self) -> str:
        return str(self.labels.get("ops.role", ""))


@dataclass(frozen=True)
class Model:
    project: str
    services: dict[str, ComposeService]

    def service(self, name: str) -> ComposeService:
        if name not in self.services:
            raise OpsError(f"unknown service {name!r} (services: {', '.join(sorted(self.services))})")
        return self.services[name]


def _healthcheck(raw) -> Healthcheck | None:
    if not raw:
        return None
    if raw.get("disable") or (raw.get("test") or [None])[0] == "NONE":
        return Healthcheck(disabled=True)
    d = Healthcheck()
    return Healthcheck(
        interval=parse_duration(raw.get("interval")) or d.interval,
        timeout=parse_duration(raw.get("timeout")) or d.timeout,
        retries=int(raw.get("retries") or d.retries),
        start_period=parse_duration(raw.get("start_period")),
    )


def _published(ports) -> tuple[str, ...]:
    out = []
    for p in ports or []:
        if isinstance(p, dict):
            if p.get("published"):
                out.append(f"{p.get('host_ip') or ''}:{p['published']}->{p.get('target')}".lstrip(":"))
        elif ":" in str(p):
            out.append(str(p))
    return tuple(out)


def _replicas(value) -> int:
    return 1 if value is None else int(value)


def parse_model(text: str) -> Model:
    """The project model from `docker compose config --format json`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OpsError(f"cannot read `docker compose config` output: {exc}") from exc
    services = {}
    for name, raw in (data.get("services") or {}).items():
        labels = raw.get("labels") or {}
        if isinstance(labels, list):
            labels = dict(item.split("=", 1) for item in labels)
        depends = raw.get("depends_on") or {}
        deploy = raw.get("deploy") or {}
        services[name] = ComposeService(
            name=name,
            image=raw.get("image", ""),
            labels=labels,
            container_name=raw.get("container_name"),
            published_ports=_published(raw.get("ports")),
            depends_on=tuple(depends if isinstance(depends, list) else depends.keys()),
            healthcheck=_healthcheck(raw.get("healthcheck")),
            replicas=_replicas(deploy.get("replicas", raw.get("scale"))),
            has_build=bool(raw.get("build")),
        )
    return Model(project=data.get("name", ""), services=services)


def wait_budget(model: Model, services=None, floor: float = 30.0) -> float:
    """Seconds `up` may wait: the longest dependency chain of healthcheck budgets.

    Compose starts a service only once its dependencies are healthy, so waits add up
    along a chain; parallel branches do not.
    """
    memo: dict[str, float] = {}

    def chain(name: str, seen: tuple[str, ...]) -> float:
        if name in memo:
            return memo[name]
        if name in seen:
            raise OpsError(f"dependency cycle: {' -> '.join((*seen, name))}")
        svc = model.services.get(name)
        if svc is None:
            return 0.0
        own = svc.healthcheck.budget() if svc.healthcheck else 0.0
        deps = [chain(d, (*seen, name)) for d in svc.depends_on]
        memo[name] = own + max(deps, default=0.0)
        return memo[name]

    names = services or list(model.services)
    return max([floor, *(chain(n, ()) for n in names)])


@dataclass(frozen=True)
class Container:
    name: str
    service: str
    state: str  # running, exited, restarting, created, paused, dead
    health: str  # healthy, unhealthy, starting, "" (no healthcheck)
    exit_code: int
    id: str
    number: int

    @property
    def ok(self) -> bool:
        return self.state == "running" and self.health in ("healthy", "")


def _container_number(raw) -> int:
    labels = raw.get("Labels") or ""
    if isinstance(labels, dict):
        return int(labels.get("com.docker.compose.container-number", 0))
    m = re.search(r"com\.docker\.compose\.container-number=(\d+)", labels)
    return int(m.group(1)) if m else 0


def parse_ps(text: str) -> list[Container]:
    """`docker compose ps --format json`: a JSON array (Compose < 2.21) or JSON lines."""
    text = text.strip()
    if not text:
        return []
    try:
        items = json.loads(text) if text.startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise OpsError(f"cannot read `docker compose ps` output: {exc}") from exc
    out = [
        Container(
            name=i.get("Name", ""),
            service=i.get("Service", ""),
            state=(i.get("State") or "").lower(),
            health=(i.get("Health") or "").lower(),
            exit_code=int(i.get("ExitCode") or 0),
            id=(i.get("ID") or "")[:12],
            number=_container_number(i),
        )
        for i in items
    ]
    return sorted(out, key=lambda c: (c.service, c.number, c.name))


# A server refusing the password it is given, as Postgres, RabbitMQ and Redis log it
# (server side or in a client's error).
_REFUSED = re.compile(r"password authentication failed|invalid credentials|ACCESS_REFUSED|"
                      r"WRONGPASS|28P01", re.IGNORECASE)


def refused_passwords(logs: str) -> list[str]:
    """Services whose lines in `docker compose logs` output (`<service>-<n>  | ...`) show
    a password being refused."""
    found = []
    for line in (logs or "").splitlines():
        prefix, sep, text = line.partition("|")
        if sep and _REFUSED.search(text):
            name = prefix.strip().rsplit("-", 1)[0]
            if name and name not in found:
                found.append(name)
    return found
