"""Who is doing something: recorded in locks so a refusal can name the holder."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime


def record(**extra) -> dict:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"), **extra}
