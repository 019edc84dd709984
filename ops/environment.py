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

from .errors import OpsError

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
        return "a Swarm environment" + ("" if self.over_ssh else " on this machine's engine")


def resolve(name: str, envs_config: Mapping) -> Environment:
    """The target of an (already validated) environment name."""
    raw = envs_config.get(name) or {}
    if not isinstance(raw, Mapping):
        raise OpsError(f"invoke.yaml envs.{name} must be a mapping")
    if name == LOCAL:
        return Environment(name, COMPOSE, False, raw)
    engine = raw.get("engine")
    if engine not in (None, "local", "ssh"):
        raise OpsError(f"invoke.yaml envs.{name}.engine must be `local` or `ssh`, not {engine!r}")
    if engine == "local":
        return Environment(name, SWARM, False, raw)
    if raw.get("hosts") or raw.get("hosts_file"):
        return Environment(name, SWARM, True, raw)
    raise OpsError(f"environment {name!r} names no machine: give it `hosts` (a Swarm over SSH) "
                   f"or `engine: local` under envs.{name} in invoke.yaml; `local` is the "
                   "Compose stack")


# What to use instead, per (task, kind it refuses). `{env}` is the environment's name.
INSTEAD = {
    ("up", SWARM): "use `inv deploy --env {env}` (blue-green, health-gated)",
    ("down", SWARM): "use `inv deploy.remove --env {env}`",
    ("clean", SWARM): "use `inv deploy.remove --env {env}`",
    ("build", SWARM): "use `inv build` (images are built here for every environment; "
                      "`inv deploy --env {env}` builds the commit it ships)",
    ("deploy", COMPOSE): "use `--env local-swarm` (this engine in Swarm mode, after "
                         "`inv swarm.init --env local-swarm`), `--env sandbox`, or a cluster "
                         "of yours; `inv up` runs the Compose stack",
    ("hosts", COMPOSE): "use an environment with SSH hosts (`--env sandbox`, or envs.<name>.hosts)",
    ("swarm", COMPOSE): "use `--env local-swarm` for this engine, or an environment with hosts",
}


def require(target: Environment, task: str, kinds: set[str], family: str | None = None,
            over_ssh: bool = False) -> Environment:
    """`target` if the task supports it, else the one-line refusal naming what to use."""
    if target.kind in kinds and (target.over_ssh or not over_ssh):
        return target
    hint = INSTEAD.get((family or task, target.kind))
    if over_ssh and target.kind == SWARM and not target.over_ssh:
        hint = INSTEAD[("hosts", COMPOSE)]
    what = f"`inv {task}` does not act on {target.name!r} ({target.description})"
    return _raise(what + (f": {hint.format(env=target.name)}" if hint else ""))


def _raise(message: str):
    raise OpsError(message, code=2)
