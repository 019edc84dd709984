"""`inv secrets.rotate` / `secrets.list`: database, cache and broker passwords changed in
place on their server and in every client, without a failed request."""

from __future__ import annotations

import sys

from invoke import Collection, task

from ..environment import COMPOSE, SWARM
from ..errors import OpsError
from .common import ENV_HELP, target, user_errors


def _config(s, where, c):
    """The stack's model as Compose resolves it (every profile), and the Swarm session."""
    from ..commands import compose
    from ..facts.values import load_json
    from ..shell import run

    if where.kind == COMPOSE:
        from ..stack import Stack

        stack = Stack(s)
        text = run(compose.config_json(stack.base_all), env=stack.env, what="docker compose config").stdout
        return load_json(text, "docker compose config"), stack, None
    from ..deploy.session import Session

    session = Session(s, where, c.config)
    return session.compose_config, None, session


@task(help={"env": ENV_HELP})
@user_errors
def list_(c, env="local"):
    """The secrets that can be rotated: their server, clients and where the value lives."""
    from ..rotation.model import Rotation, rotations

    s, where = target(c, env, "secrets.list", {COMPOSE, SWARM})
    if where.kind == COMPOSE:
        config, _, _ = _config(s, where, c)
    else:
        from ..deploy.session import Session

        with Session(s, where, c.config, connect=False) as session:
            config = session.compose_config
    found = rotations(config)
    width = max(map(len, found), default=0)
    for key, r in found.items():
        if isinstance(r, Rotation):
            print(f"{key:{width}}  {r.server.role} {r.server.service} (user {r.server.user}); clients "
                  f"{', '.join(r.clients) or '-'}; {r.variable} from {s.sources.get(r.variable, 'unset')}")
        else:
            print(f"{key:{width}}  not rotatable: {r}")


@task(help={"name": "the secret, as compose.yaml names it (see `inv secrets.list`)",
            "env": ENV_HELP})
@user_errors
def rotate(c, name, env="local"):
    """Change a database, cache or broker password everywhere, with no failed request.

    On its server, in .env[.<env>] and in every client; a failure puts the old one back."""
    from ..rotation import protocol
    from ..rotation.model import pick

    s, where = target(c, env, "secrets.rotate", {COMPOSE, SWARM})
    config, stack, session = _config(s, where, c)
    try:
        try:
            rotation = pick(config, name)
        except ValueError as exc:
            raise OpsError(str(exc)) from None
        file = protocol.env_file(s.sources, rotation.variable, s.root, s.env)
        journal = protocol.journal_for(s.root, s.env, rotation.key)
        current = s.variables.get(rotation.variable, "")
        if session is not None:
            session.require_swarm_manager()  # before saying what it will do
        print(f"rotating {rotation.key} on {s.env}: {rotation.server.service} "
              f"(user {rotation.server.user}), then {', '.join(rotation.clients) or 'no client'}",
              file=sys.stderr)
        if session is None:
            from ..rotation.compose_place import ComposePlace

            with protocol.local_lock(s.root):
                rec = protocol.rotate(ComposePlace(stack, rotation), rotation, current, file, journal)
        else:
            from ..deploy import audit
            from ..rotation.swarm_place import SwarmPlace

            d = session.d
            from ..deploy import flow

            with d.lock(f"rotate {rotation.key}"):
                try:
                    rec = protocol.rotate(SwarmPlace(session, rotation), rotation, current, file,
                                          journal)
                except BaseException as exc:
                    flow.write_audit(d, audit.record("rotate", d.env, "failed", secret=rotation.key,
                                                     error=str(exc)[:300]))
                    raise
                flow.write_audit(d, audit.record("rotate", d.env, "ok", **rec))
    finally:
        if session is not None:
            session.close()
    print(f"{rec['secret']} rotated on {s.env} in {rec['seconds']:.1f}s: {rec['server']} and "
          f"{', '.join(rec['clients']) or 'no running client'} use the new value "
          f"(kept in {file.name}); the old one no longer logs in")


ns = Collection("secrets")
ns.add_task(list_, name="list")
ns.add_task(rotate)
