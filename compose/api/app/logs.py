"""One JSON object per log line, on stdout, so `docker logs` and any shipper can parse it."""

import contextvars
import json
import logging
import re
import sys
import time
import uuid

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
# The request (or job) being handled: every line logged while it is set carries its ID,
# so `inv logs --request ID` finds all of them, not only the access line.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# What the gateway lets through (nginx.conf's map): anything else is replaced.
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(given: str | None) -> str:
    """The caller's ID when it is a sane one, else a new one (a request reaching the
    api without the gateway, or a message from an older api)."""
    return given if given and _VALID_ID.fullmatch(given) else uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid:
            entry["request_id"] = rid
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str, name: str = "api") -> logging.Logger:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.getLogger(name)
