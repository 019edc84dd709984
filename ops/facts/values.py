"""Pure parsers of option and settings values, and of the JSON tools print: one clear
OpsError naming the option or the tool when a value is not what it must be."""

from __future__ import annotations

import json
import re

from ..errors import USAGE, OpsError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def bounded_int(value, low: int, high: int, message: str) -> int:
    """`value` as an int in low..high, else OpsError(message) (bools and junk too)."""
    try:
        return number_option(value, "value", low, high, integer=True)
    except OpsError:
        raise OpsError(message) from None


def number_option(value, option: str, low: float, high: float, integer: bool = False):
    """A numeric command-line option or setting, range-checked: the one validator every
    task uses, so `--timeout x` is one line, never a traceback."""
    kind = "a whole number" if integer else "a number"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value), 10) if integer else float(value)
        if number != number or not low <= number <= high:  # NaN too
            raise ValueError
    except (TypeError, ValueError):
        raise OpsError(f"{option} must be {kind} from {_plain(low)} to {_plain(high)}, "
                       f"not {value!r}", code=USAGE) from None
    return number


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def load_json(text: str, what: str, lines: bool = False):
    """JSON (or JSON lines) read from a tool or a remote host: a damaged answer is one
    line naming where it came from and how it starts, not a traceback."""
    try:
        if lines:
            return [json.loads(line) for line in (text or "").splitlines() if line.strip()]
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        head = " ".join(str(text or "").split())[:80]
        raise OpsError(f"{what}: unreadable answer ({getattr(exc, 'msg', exc)}): {head!r}") from None


def parse_duration(text) -> float:
    """Seconds in a Go duration as Compose prints it ("1m30s", "500ms", "0s")."""
    if text is None or text == "":
        return 0.0
    if isinstance(text, int | float):  # some Compose versions print nanoseconds
        return float(text) / 1e9
    s = str(text).strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"not a duration: {text!r}")
    return total


_SINCE_TIME = re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)?)?"
                         r"|\d{1,10}(\.\d{1,9})?")


def since_option(value, option: str = "--since") -> str | None:
    """`--since` as Docker's logs take it: a duration back from now (10m, 1h30m), a date
    or RFC 3339 time, or a Unix timestamp. Checked here: a value Docker refuses would
    otherwise read as 'no log line' in a search."""
    if value is None:
        return None
    text = "" if isinstance(value, bool) else str(value)
    try:
        if text and parse_duration(text) >= 0:
            return text
    except ValueError:
        if _SINCE_TIME.fullmatch(text):
            return text
    raise OpsError(f"{option} must be a duration (10m, 1h30m), a date or time "
                   f"(2026-01-01, 2026-01-01T10:00:00) or a Unix timestamp, not {value!r}",
                   code=USAGE)
