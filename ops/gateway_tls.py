"""The gateway's certificate for one environment, and what clients trust to reach it.

Two origins (`envs.<env>.tls` in invoke.yaml):
- `cert:` and `key:` (PEM files; `ca:` optionally, a bundle clients verify against when
  the issuer is a private CA): the certificate is the user's, checked and never touched;
- `self_signed: true` (the default where the URL is this machine: local, local-swarm,
  the sandbox): a leaf issued by the project's own CA in `.tls/` (git-ignored), issued
  again automatically when it nears expiry or lacks a name the environment needs.
  Clients here trust `.tls/ca.crt`; a browser can too (`inv tls.show`).
An environment with a public URL and no `tls` is refused: a self-signed certificate
there would only teach users to click through warnings.

The gateway gets the certificate and key as secrets: on Swarm versioned by content (a
renewed certificate rolls the gateway), locally through Compose's environment-sourced
secrets (OPS_GATEWAY_TLS_CERT/KEY, set by the tasks that run Compose)."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import secrets
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import OpsError
from .files import write_atomic

DIR = ".tls"  # under the project root, unless OPS_TLS_DIR names another (one CA for
# several checkouts: trusted once in a browser)
CERT_VAR, KEY_VAR = "OPS_GATEWAY_TLS_CERT", "OPS_GATEWAY_TLS_KEY"


@dataclass(frozen=True)
class Material:
    cert_pem: str
    key_pem: str
    trust: str | bool  # what clients verify against: a CA file, or True (system roots)
    origin: str  # said by `inv tls.show`

    @property
    def info(self):
        from . import tls  # cryptography: only when a certificate is read (not by `inv ps`)

        return tls.info(self.cert_pem)

    @property
    def version(self) -> str:
        """Changes with the certificate (a label: Compose recreates the gateway)."""
        return hashlib.sha256(self.cert_pem.encode()).hexdigest()[:16]

    def compose_env(self) -> dict[str, str]:
        return {CERT_VAR: self.cert_pem, KEY_VAR: self.key_pem, "OPS_GATEWAY_TLS_VERSION": self.version}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_loopback(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings(env: str, env_config: Mapping, url: str | None) -> dict:
    """envs.<env>.tls, checked: {"cert", "key", "ca"} paths or {"self_signed": True}."""
    raw = env_config.get("tls")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise OpsError(f"invoke.yaml envs.{env}.tls must be a mapping (cert, key, ca, self_signed)")
    unknown = sorted(set(raw) - {"cert", "key", "ca", "self_signed"})
    if unknown:
        raise OpsError(f"invoke.yaml envs.{env}.tls: unknown key(s) {', '.join(unknown)} "
                       "(cert, key, ca, self_signed)")
    if raw.get("cert") or raw.get("key"):
        if not (raw.get("cert") and raw.get("key")):
            raise OpsError(f"invoke.yaml envs.{env}.tls: give both cert and key")
        if raw.get("self_signed"):
            raise OpsError(f"invoke.yaml envs.{env}.tls: cert/key or self_signed, not both")
        return {k: str(raw[k]) for k in ("cert", "key", "ca") if raw.get(k)}
    host = urlsplit(url).hostname if url else None
    if raw.get("self_signed", is_loopback(host)):
        return {"self_signed": True}
    raise OpsError(f"environment {env} ({url}) has no certificate: set envs.{env}.tls.cert and "
                   f".key (PEM files) in invoke.yaml, or `self_signed: true` to use the project's "
                   "own CA (clients must then trust .tls/ca.crt)")


def tls_dir(root: Path) -> Path:
    return Path(os.environ.get("OPS_TLS_DIR") or root / DIR)


@contextmanager
def locked_tls_dir(root: Path):
    """One issuer at a time (two tasks starting together must not mix a new key with an
    old certificate)."""
    d = tls_dir(root)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(d / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield d


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _ca(d: Path, now: dt.datetime, out) -> tuple[str, str]:
    from . import tls

    cert, key = _read(d / "ca.crt"), _read(d / "ca.key")
    if cert and key:
        info = tls.info(cert)
        if info.days_left(now) > tls.LEAF_DAYS:
            return cert, key
        print(f"the local CA {d / 'ca.crt'} expires soon: making a new one "
              "(re-import it where you trusted the old one)", file=out)
    # A random part: two projects' CAs never share a subject (a leaf is matched to its
    # CA by issuer name).
    cert, key = tls.new_ca(f"ops-toolkit local CA {secrets.token_hex(4)}", now)
    write_atomic(d / "ca.key", key, mode=0o600)
    write_atomic(d / "ca.crt", cert, mode=0o644)
    print(f"made a local CA: {d / 'ca.crt'} (trust it to browse the gateway without warnings)",
          file=out)
    return cert, key


def ensure_ca(root: Path, out) -> Path:
    """The project's CA, made when missing; its certificate's path."""
    with locked_tls_dir(root) as d:
        _ca(d, _now(), out)
        return d / "ca.crt"


def self_signed(root: Path, env: str, names: list[str], out, issue: bool = True) -> Material | None:
    """The environment's leaf from the project's CA; issued (again) when missing, near
    expiry or lacking one of `names`. `issue=False`: only what is there (None if nothing)."""
    now = _now()
    with locked_tls_dir(root) as d:
        leaf_dir = d / env
        cert, key = _read(leaf_dir / "gateway.crt"), _read(leaf_dir / "gateway.key")
        if not issue:
            if not (cert and key):
                return None
            return Material(cert, key, str(d / "ca.crt"), _origin(d))
        from . import tls

        ca_cert, ca_key = _ca(d, now, out)
        ca = tls.info(ca_cert)
        try:
            current = tls.info(cert) if cert and key else None
        except ValueError:
            current = None
        reason = tls.reissue_reason(current, names, ca, now)
        if reason:
            # The names it had are kept: environments sharing the leaf (two apps on one
            # sandbox) must not take turns issuing it, each issue rolling the gateway.
            kept = list(current.names) if current and current.issuer == ca.subject else []
            cert, key = tls.issue(ca_cert, ca_key, list(dict.fromkeys([*names, *kept])), now)
            leaf_dir.mkdir(mode=0o700, exist_ok=True)
            write_atomic(leaf_dir / "gateway.key", key, mode=0o600)
            write_atomic(leaf_dir / "gateway.crt", cert, mode=0o644)
            if current is not None:
                print(f"gateway certificate for {env} issued again ({reason})", file=out)
        return Material(cert, key, str(d / "ca.crt"), _origin(d))


def _origin(d: Path) -> str:
    return f"self-signed by the project's CA ({d / 'ca.crt'})"


def provided(root: Path, env: str, cfg: dict, host: str | None) -> Material:
    """The user's certificate and key, checked: readable, a pair, valid for the URL's
    host, not expired."""
    def read(key: str) -> str:
        path = root / cfg[key]
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OpsError(f"envs.{env}.tls.{key}: cannot read {path}: {exc.strerror}") from None

    from . import tls

    cert, key = read("cert"), read("key")
    try:
        info = tls.info(cert)
        tls.check_pair(cert, key)
    except ValueError as exc:
        raise OpsError(f"envs.{env}.tls: {root / cfg['cert']}: {exc}") from None
    if host and not tls.covers(info.names, host):
        raise OpsError(f"envs.{env}.tls: the certificate is for {', '.join(info.names) or info.subject}, "
                       f"not {host}")
    if info.days_left(_now()) < 0:
        raise OpsError(f"envs.{env}.tls: the certificate {tls.describe_expiry(info, _now())}")
    trust: str | bool = True
    if cfg.get("ca"):
        ca = root / cfg["ca"]
        if not ca.is_file():
            raise OpsError(f"envs.{env}.tls.ca: {ca} is not a file")
        trust = str(ca)
    return Material(cert, key, trust, f"envs.{env}.tls.cert ({root / cfg['cert']})")


def material(root: Path, env: str, env_config: Mapping, url: str | None, names: list[str],
             out, issue: bool = True) -> Material | None:
    """The environment's certificate (see the module's docstring); None only when
    `issue=False` and no self-signed one was made yet."""
    cfg = settings(env, env_config, url)
    host = urlsplit(url).hostname if url else None
    if cfg.get("self_signed"):
        wanted = list(dict.fromkeys([*names, *([host] if host else [])]))
        return self_signed(root, env, wanted, out, issue=issue)
    return provided(root, env, cfg, host)


def write_bundle(ca: Path, dest: Path) -> Path:
    """The system's roots plus the project's CA in one file: for REQUESTS_CA_BUNDLE in a
    process whose children also reach public HTTPS (pip honours that variable too, and
    with the CA alone could no longer verify its index)."""
    import ssl

    system = ssl.get_default_verify_paths().cafile
    if not system:
        import certifi

        system = certifi.where()
    write_atomic(dest, Path(system).read_text(encoding="utf-8") + "\n" + ca.read_text(encoding="utf-8"),
                 mode=0o644)
    return dest


def trust(root: Path, env: str, env_config: Mapping, url: str | None) -> str | bool:
    """What a client verifies the gateway against, without reading the key."""
    cfg = settings(env, env_config, url)
    if cfg.get("self_signed"):
        ca = tls_dir(root) / "ca.crt"
        # Not made yet: the system roots, which fail with a clear "certificate verify
        # failed" instead of requests' error about a missing bundle.
        return str(ca) if ca.is_file() else True
    return str(root / cfg["ca"]) if cfg.get("ca") else True
