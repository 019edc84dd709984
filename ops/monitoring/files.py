"""Where the monitoring configuration lives on this machine, for every kind of
environment: the Compose profile's name (the Swarm translation renders it too), the
cache directory of the rendered files, and the gateway's CA beside blackbox.yml."""

from __future__ import annotations

from pathlib import Path

from ..files import write_atomic
from . import promconfig

PROFILE = "monitoring"
GRAFANA = "grafana"  # its own profile: only where GRAFANA_IMAGE can be pulled
CACHE = Path(".cache") / "monitoring"  # under the project root, one directory per project


def write_ca(config_dir: Path, trust: str | bool) -> str | None:
    """The gateway's private CA beside blackbox.yml (where the probe reads it); None when
    the system's roots are what the certificate is verified against. The file is always
    written (Swarm ships it as a config): empty of certificates then."""
    text = Path(trust).read_text(encoding="utf-8") if isinstance(trust, str) else ""
    write_atomic(config_dir / "gateway-ca.crt", text or "# the system's roots\n", mode=0o644)
    return promconfig.CA_FILE if text else None
