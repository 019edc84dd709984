"""What every task shares: settings for --env, and user errors as one line + exit code."""

from __future__ import annotations

import errno
import functools
import os
import sys

from invoke import Exit

from .. import config
from ..errors import OpsError

ENV_HELP = ("environment to act on: local (the Compose stack, default) or a Swarm "
            "environment of invoke.yaml envs (.env.<ENV> is layered over .env)")


project_root = config.project_root


def settings(c, env: str) -> config.Settings:
    return config.load(c.config.get("stack", {}), c.config.get("envs", {}), env, root=project_root())


def platform(c, env: str):
    """The platform of --env (ops.platforms): a context manager that closes whatever it
    opened. Opening connects nothing; what the kind does not do is refused by the
    platform, in one line naming what to use instead (exit 2), before anything runs."""
    from ..platforms import open_platform

    return open_platform(c, env)


def user_errors(fn):
    """OpsError -> `error: ...` on stderr and its exit code; Ctrl-C -> exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe surfaces here, not at the interpreter's exit
            return result
        except OpsError as exc:
            raise Exit(f"error: {exc}", code=exc.code) from None
        except BrokenPipeError:
            # `inv config | head`: the reader left; nothing is wrong and nothing to say.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=141) from None
        except OSError as exc:
            # The disk this machine writes to is full, read-only or over quota: what and
            # where, in one line (a traceback would hide the one fact that matters).
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            raise Exit(f"error: {exc.strerror}{where}", code=1) from None
        except Exception as exc:
            # The docker SDK's and paramiko's own errors are environment failures with a
            # clear message of their own: one line, not a traceback.
            if type(exc).__module__.split(".")[0] in ("docker", "paramiko", "requests"):
                text = " ".join(str(exc).split())[:400]
                raise Exit(f"error: {type(exc).__name__}: {text}", code=1) from None
            from invoke.exceptions import ThreadException

            if isinstance(exc, ThreadException):  # a remote command's stdin/stdout copier
                inner = "; ".join(f"{w.type.__name__}: {w.value}" for w in exc.exceptions)
                raise Exit(f"error: a remote command's I/O failed ({inner})", code=1) from None
            raise
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper


def confirm(question: str, yes: bool) -> None:
    """Ask y/N on a terminal; without one, refuse unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise OpsError(f"{question.rstrip('?')}: refusing without --yes (no terminal to ask on)")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise OpsError("cancelled: nothing was changed")
