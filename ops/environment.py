"""`--env NAME` -> the one target every task acts on, or a one-line refusal.

An environment is either the local Compose project (`local`, and only `local`) or a
Swarm stack: hosts reached over SSH (`envs.<name>.hosts` or a generated `hosts_file`,
such as the sandbox), or this machine's own engine in Swarm mode
(`envs.<name>.engine: local`, shipped as `local-swarm`). Nothing else is a target: a
`.env.<name>` file alone names no machine, so a task given such a name refuses
instead of quietly acting on the laptop's stack under another name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import USAGE, OpsError

COMPOSE = "compose"
SWARM = "swarm"
LOCAL = "local"  # the Compose stack, always


@dataclass(frozen=True)
class Environment:
    name: str
    kind: str  # COMPOSE | SWARM
    over_ssh: bool  # SWARM: hosts reached through Fabric; False: this machine's engine
    config: Mapping = field(default_factory=dict, repr=False)  # envs.<name> as written

    @property
    def description(self) -> str:
        if self.kind == COMPOSE:
            return "the local Compose stack"
        if self.kind == SWARM:
            return "a Swarm environment" + ("" if self.over_ssh else " on this machine's engine")
        return f"a {self.kind} environment"


def resolve(name: str, envs_config: Mapping, kinds: set[str] | None = None) -> Environment:
    """The target of an (already validated) environment name. `envs.<name>.kind` names
    a kind explicitly (one of `kinds`, the registered platforms); without it the kind
    follows from what the environment names: `engine` or `hosts` make a Swarm."""
    raw = envs_config.get(name) or {}
    if not isinstance(raw, Mapping):
        raise OpsError(f"invoke.yaml envs.{name} must be a mapping")
    if name == LOCAL:
        return Environment(name, COMPOSE, False, raw)
    kind = raw.get("kind")
    if kind is not None and kind != SWARM:
        known = sorted(kinds or {COMPOSE, SWARM})
        if kind not in known or kind == COMPOSE:
            raise OpsError(f"invoke.yaml envs.{name}.kind must be one of "
                           f"{', '.join(k for k in known if k != COMPOSE)}, not {kind!r} "
                           "(`local` is the Compose stack)")
        return Environment(name, kind, bool(raw.get("hosts") or raw.get("hosts_file")), raw)
    engine = raw.get("engine")
    if engine not in (None, "local", "ssh"):
        raise OpsError(f"invoke.yaml envs.{name}.engine must be `local` or `ssh`, not {engine!r}")
    if engine == "local":
        return Environment(name, SWARM, False, raw)
    if raw.get("hosts") or raw.get("hosts_file"):
        return Environment(name, SWARM, True, raw)
    raise OpsError(f"environment {name!r} names no machine: give it `hosts` (a Swarm over SSH) "
                   f"or `engine: local` under envs.{name} in invoke.yaml; `local` is the "
                   "Compose stack", code=USAGE)
