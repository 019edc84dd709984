"""pgBackRest's certificates for one environment: a CA of its own (a gateway certificate
never opens the backups) and one certificate per end, each both server and client:
the databases' (CN pgbackrest-db: they push WAL and serve base backups) and the
repository's (CN pgbackrest-repo: it serves the archive and takes the backups). The
TLS servers admit a client by its CN (ops-pgbackrest: tls-server-auth).

Kept in `.tls/pgbackrest/<env>/` (git-ignored, 0600 keys); issued again when near
expiry or when a database the stack gained is not among its names. The tasks pass them
to Compose (environment-sourced secrets) and to Swarm (versioned secrets) as VARS."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic

DB_CN, REPO_CN = "pgbackrest-db", "pgbackrest-repo"
VARS = {"ca": "OPS_PGBACKREST_CA", "db_cert": "OPS_PGBACKREST_DB_CERT",
        "db_key": "OPS_PGBACKREST_DB_KEY", "repo_cert": "OPS_PGBACKREST_REPO_CERT",
        "repo_key": "OPS_PGBACKREST_REPO_KEY"}


@dataclass(frozen=True)
class Material:
    pems: dict[str, str]  # the keys of VARS -> PEM text

    def compose_env(self) -> dict[str, str]:
        return {VARS[k]: v for k, v in self.pems.items()}

    @property
    def version(self) -> str:
        """Changes with any certificate (Compose does not compare secret contents)."""
        return hashlib.sha256("".join(self.pems[k] for k in sorted(self.pems)).encode()).hexdigest()[:16]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _leaf(d: Path, end: str, names: list[str], ca: tuple[str, str], now: dt.datetime,
          renew: bool) -> tuple[str, str]:
    from .. import tls

    cert, key = _read(d / f"{end}.crt"), _read(d / f"{end}.key")
    try:
        current = tls.info(cert) if cert and key else None
    except ValueError:
        current = None
    if current is not None and not renew and not tls.reissue_reason(current, names, tls.info(ca[0]), now):
        return cert, key
    kept = list(current.names) if current is not None and not renew else []
    cert, key = tls.issue(ca[0], ca[1], list(dict.fromkeys([*names, *kept])), now, client=True)
    write_atomic(d / f"{end}.key", key, mode=0o600)
    write_atomic(d / f"{end}.crt", cert, mode=0o644)
    return cert, key


def material(root: Path, env: str, db_names: list[str], repo_names: list[str],
             issue: bool = True) -> Material | None:
    """The environment's certificates, made or renewed when `issue`; with issue=False
    only what is there (None when nothing was made yet). `db_names`/`repo_names`: the
    addresses each end is reached at (its service names)."""
    from .. import tls
    from ..gateway_tls import locked_tls_dir

    now = dt.datetime.now(dt.UTC)
    with locked_tls_dir(root) as top:
        d = top / "pgbackrest" / env
        if not issue:
            pems = {k: _read(d / f) for k, f in (("ca", "ca.crt"), ("db_cert", "db.crt"),
                                                 ("db_key", "db.key"), ("repo_cert", "repo.crt"),
                                                 ("repo_key", "repo.key"))}
            return Material(pems) if all(pems.values()) else None
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = (_read(d / "ca.crt"), _read(d / "ca.key"))
        renew = not (ca[0] and ca[1]) or tls.info(ca[0]).days_left(now) <= tls.LEAF_DAYS
        if renew:
            ca = tls.new_ca(f"ops-toolkit pgBackRest CA ({env})", now)
            write_atomic(d / "ca.key", ca[1], mode=0o600)
            write_atomic(d / "ca.crt", ca[0], mode=0o644)
        db = _leaf(d, "db", [DB_CN, *db_names], ca, now, renew)
        repo = _leaf(d, "repo", [REPO_CN, *repo_names], ca, now, renew)
        return Material({"ca": ca[0], "db_cert": db[0], "db_key": db[1],
                         "repo_cert": repo[0], "repo_key": repo[1]})


def for_stack(root: Path, env: str, roles: dict[str, str], prefix: str | None = None) -> Material:
    """The environment's certificates for a stack whose services have `roles` ({service:
    ops.role}): each end valid for its services' names, and `prefix_`-prefixed ones too
    where the platform names them so (Swarm's <stack>_<service>)."""
    def names(role: str) -> list[str]:
        return sorted(x for n, r in roles.items() if r == role
                      for x in (n, *([f"{prefix}_{n}"] if prefix else [])))

    return material(root, env, names("database"), names("backup-repository"))
