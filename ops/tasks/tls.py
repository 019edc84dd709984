"""`inv tls.show`: the gateway's certificate of an environment, and what clients trust."""

from __future__ import annotations

import datetime as dt

from invoke import Collection, task

from .common import ENV_HELP, platform, user_errors


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def show(c, env="local", json_=False):
    """The gateway's TLS certificate: where it comes from, its names, expiry, what to trust."""
    from .. import tls

    with platform(c, env) as p:
        s, material = p.settings, p.tls()
    info = material.info
    now = dt.datetime.now(dt.UTC)
    trust = (f"{material.trust} (curl --cacert, REQUESTS_CA_BUNDLE, or import it into a browser's "
             "authorities)" if isinstance(material.trust, str) else "the system's roots")
    if json_:
        import json

        print(json.dumps({"env": s.env, "origin": material.origin, "names": list(info.names),
                          "subject": info.subject, "issuer": info.issuer,
                          "not_before": info.not_before.isoformat(),
                          "not_after": info.not_after.isoformat(),
                          "days_left": int(info.days_left(now)), "sha256": info.fingerprint,
                          "trust": material.trust if isinstance(material.trust, str) else None},
                         indent=2))
        return
    print(f"gateway certificate for {s.env}: {material.origin}\n"
          f"  names    {', '.join(info.names) or '-'}\n"
          f"  subject  {info.subject}\n"
          f"  issuer   {info.issuer}\n"
          f"  issued   {info.not_before:%Y-%m-%d}, {tls.describe_expiry(info, now)}\n"
          f"  sha256   {':'.join(info.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()}\n"
          f"  clients  trust {trust}")


ns = Collection("tls")
ns.add_task(show)
