"""`inv secrets.rotate` / `secrets.list`: database, cache and broker passwords changed in
place on their server and in every client, without a failed request."""

from __future__ import annotations

import json
import sys

from invoke import Collection, task

from ..errors import OpsError
from .common import ENV_HELP, platform, user_errors


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def list_(c, env="local", json_=False):
    """The secrets that can be rotated: their server, clients and where the value lives."""
    from ..rotation.model import Rotation, rotations

    with platform(c, env) as p:
        s, found = p.settings, rotations(p.stack_config())
    if json_:
        print(json.dumps({key: {"server": r.server.service, "role": r.server.role,
                                "user": r.server.user, "clients": list(r.clients),
                                "variable": r.variable,
                                "source": s.sources.get(r.variable, "unset")}
                          if isinstance(r, Rotation) else {"not_rotatable": str(r)}
                          for key, r in found.items()}, indent=2))
        return
    width = max(map(len, found), default=0)
    for key, r in found.items():
        if isinstance(r, Rotation):
            print(f"{key:{width}}  {r.server.role} {r.server.service} (user {r.server.user}); clients "
                  f"{', '.join(r.clients) or '-'}; {r.variable} from {s.sources.get(r.variable, 'unset')}")
        else:
            print(f"{key:{width}}  not rotatable: {r}")


@task(help={"name": "the secret, as compose.yaml (app_db_password) or .env (APP_DB_PASSWORD) "
                    "names it (see `inv secrets.list`)",
            "json": "print the rotation's record as JSON", "env": ENV_HELP})
@user_errors
def rotate(c, name, env="local", json_=False):
    """Change a database, cache or broker password everywhere, with no failed request.

    On its server, in .env[.<env>] and in every client; a failure puts the old one back."""
    from ..rotation import protocol
    from ..rotation.model import pick

    with platform(c, env) as p:
        s = p.settings
        try:
            rotation = pick(p.stack_config(), name)
        except ValueError as exc:
            raise OpsError(str(exc)) from None
        file = protocol.env_file(s.sources, rotation.variable, s.root, s.env)
        journal = protocol.journal_for(s.root, s.env, rotation.key)
        current = s.variables.get(rotation.variable, "")
        p.check_ready()  # before saying what it will do
        print(f"rotating {rotation.key} on {s.env}: {rotation.server.service} "
              f"(user {rotation.server.user}), then {', '.join(rotation.clients) or 'no client'}",
              file=sys.stderr)
        rec = p.rotate(rotation, lambda place: protocol.rotate(place, rotation, current, file,
                                                                journal))
    if json_:
        print(json.dumps(rec, indent=2, default=str))
        return
    print(f"{rec['secret']} rotated on {s.env} in {rec['seconds']:.1f}s: {rec['server']} and "
          f"{', '.join(rec['clients']) or 'no running client'} use the new value "
          f"(kept in {file.name}); the old one no longer logs in")


ns = Collection("secrets")
ns.add_task(list_, name="list")
ns.add_task(rotate)
