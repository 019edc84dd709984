"""Maintenance mode's file for the gateway (pure): live/maintenance.conf sets the
variables compose/gateway/nginx.conf reads ($maintenance, $maintenance_retry,
$maintenance_message); its absence is maintenance off."""

from __future__ import annotations

import html
import re
from datetime import datetime

from .errors import USAGE, OpsError

FILE = "maintenance.conf"
DEFAULT_MESSAGE = "We are making things better. Please try again in a few minutes."
MAX_MESSAGE = 500
SINCE = re.compile(r'^set \$maintenance "on since ([0-9T:+Z-]+)";$', re.M)


def check_message(text: str) -> str:
    """One line of printable text (HTML-escaped when written): a newline or a control
    character is refused, never passed to nginx."""
    text = text.strip() if text is not None else ""
    if not text:
        return DEFAULT_MESSAGE
    if len(text) > MAX_MESSAGE or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise OpsError(f"--message: one line of at most {MAX_MESSAGE} printable characters",
                       code=USAGE)
    return text


def _nginx_string(text: str) -> str:
    """Inside nginx's double quotes: HTML-escaped first (it is a page), then `\\`, `"` and
    `$` (a variable otherwise) made inert."""
    text = html.escape(text, quote=True).replace("$", "&#36;")
    return text.replace("\\", "&#92;").replace('"', "&quot;")


def conf(message: str, retry_after: int, since: datetime) -> str:
    return (f"# Written by `inv maintenance.on`; `inv maintenance.off` removes it.\n"
            f'set $maintenance "on since {since:%Y-%m-%dT%H:%M:%SZ}";\n'
            f'set $maintenance_retry "{int(retry_after)}";\n'
            f'set $maintenance_message "{_nginx_string(check_message(message))}";\n')


def state(text: str | None) -> dict:
    """{"on": bool, "since": time or None} of the file's content (None: no file)."""
    m = SINCE.search(text or "")
    return {"on": bool(text and text.strip()), "since": m.group(1) if m else None}
