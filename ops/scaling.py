"""Policy for `inv scale`: parse `SERVICE=N[,SERVICE=N...]` and refuse what cannot scale."""

from __future__ import annotations

import re

from .errors import USAGE, OpsError
from .facts.compose import STATEFUL_ROLES, Model

SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
MAX_REPLICAS = 50


def parse_spec(spec: str) -> dict[str, int]:
    """`api=3` or `api=3,worker=2` (commas or spaces) -> {"api": 3, "worker": 2}."""
    items = [i for i in re.split(r"[,\s]+", spec or "") if i]
    if not items:
        raise OpsError("nothing to scale: give SERVICE=N, e.g. `inv scale api=3`", code=USAGE)
    out: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep:
            raise OpsError(f"bad scale argument {item!r}: expected SERVICE=N", code=USAGE)
        if not SERVICE_NAME.match(name):
            raise OpsError(f"bad service name {name!r}: letters, digits, '.', '_' and '-' only", code=USAGE)
        if not re.fullmatch(r"[+-]?\d+", count.strip()):
            raise OpsError(f"bad replica count {count!r} for {name}: expected a whole number >= 0",
                           code=USAGE)
        n = int(count)
        if n < 0:
            raise OpsError(f"bad replica count {n} for {name}: must be >= 0", code=USAGE)
        if n > MAX_REPLICAS:
            raise OpsError(f"replica count {n} for {name} is over the limit of {MAX_REPLICAS}", code=USAGE)
        if name in out:
            raise OpsError(f"service {name!r} given twice", code=USAGE)
        out[name] = n
    return out


def check(model: Model, wanted: dict[str, int]) -> None:
    """Refuse services that cannot run as several identical replicas."""
    for name in wanted:
        svc = model.service(name)
        if svc.role in STATEFUL_ROLES or svc.labels.get("ops.stateful") == "true":
            raise OpsError(f"refusing to scale {name}: it is stateful (role {svc.role or 'stateful'}); "
                           "replicas would not share its data")
        if svc.container_name:
            raise OpsError(f"refusing to scale {name}: it sets container_name "
                           f"{svc.container_name!r}, which only one container can have")
        if svc.published_ports:
            raise OpsError(f"refusing to scale {name}: it publishes fixed host port(s) "
                           f"{', '.join(svc.published_ports)}")
