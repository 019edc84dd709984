"""One package per kind of environment, each implementing `base.Platform`.

`open_platform(c, env)` is the only place that turns `--env NAME` into the object a
task acts on: it reads the layered settings, resolves the environment's kind
(`ops.environment.resolve`) and builds that kind's platform. Opening connects nothing:
a platform opens its connections when a method first needs them, so a refusal comes
before any SSH. A new kind is one package and one line in KINDS (or `register`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import OpsError

# kind -> "module:Class", imported only when an environment of that kind is opened.
KINDS: dict[str, str | Callable] = {
    "compose": "ops.platforms.compose.platform:ComposePlatform",
    "swarm": "ops.platforms.swarm.platform:SwarmPlatform",
}


def register(kind: str, factory: str | Callable) -> None:
    """Add a kind of environment: `factory(settings, environment, config)` -> Platform
    (or "module:Class" naming one). `envs.<name>.kind: <kind>` in invoke.yaml uses it."""
    KINDS[kind] = factory


def factory_of(kind: str) -> Callable:
    found = KINDS.get(kind)
    if found is None:
        raise OpsError(f"no platform for environments of kind {kind!r} (known: "
                       f"{', '.join(sorted(KINDS))})")
    if isinstance(found, str):
        module, _, name = found.partition(":")
        found = getattr(importlib.import_module(module), name)
    return found


def open_env(config: Mapping, env: str, root: Path):
    """The platform of `env` from Invoke's config (`stack:`, `envs:` and the rest)."""
    from .. import config as settings_mod
    from .. import environment

    envs = config.get("envs") or {}
    s = settings_mod.load(config.get("stack", {}), envs, env, root=root)
    where = environment.resolve(s.env, envs, kinds=set(KINDS))
    return factory_of(where.kind)(s, where, config)


def open_platform(c, env: str):
    """The platform of `--env` for a task (its Context's config, the project's root)."""
    from ..config import project_root

    return open_env(c.config, env, project_root())
