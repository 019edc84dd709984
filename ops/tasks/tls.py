"""`inv tls.show`: the gateway's certificate of an environment, and what clients trust."""

from __future__ import annotations

import datetime as dt

from invoke import Collection, task

from ..environment import COMPOSE, SWARM
from ..errors import OpsError
from .common import ENV_HELP, target, user_errors


@task(help={"env": ENV_HELP})
@user_errors
def show(c, env="local"):
    """The gateway's TLS certificate: where it comes from, its names, expiry, what to trust."""
    from .. import tls

    s, where = target(c, env, "tls.show", {COMPOSE, SWARM})
    if where.kind == COMPOSE:
        from ..stack import Stack

        material = Stack(s).tls
    else:
        from ..deploy.session import Session

        with Session(s, where, c.config, connect=False) as session:
            material = session.tls(issue=False)
    if material is None:
        how = "`inv up`" if where.kind == COMPOSE else f"`inv deploy --env {s.env}`"
        raise OpsError(f"no gateway certificate for {s.env} yet: {how} issues one")
    info = material.info
    now = dt.datetime.now(dt.UTC)
    trust = (f"{material.trust} (curl --cacert, REQUESTS_CA_BUNDLE, or import it into a browser's "
             "authorities)" if isinstance(material.trust, str) else "the system's roots")
    print(f"gateway certificate for {s.env}: {material.origin}\n"
          f"  names    {', '.join(info.names) or '-'}\n"
          f"  subject  {info.subject}\n"
          f"  issuer   {info.issuer}\n"
          f"  issued   {info.not_before:%Y-%m-%d}, {tls.describe_expiry(info, now)}\n"
          f"  sha256   {':'.join(info.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()}\n"
          f"  clients  trust {trust}")


ns = Collection("tls")
ns.add_task(show)
