"""What every task shares: settings for --env, and user errors as one line + exit code."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from invoke import Exit

from .. import config
from ..errors import OpsError

ENV_HELP = ("environment to act on: local (the Compose stack, default) or a Swarm "
            "environment of invoke.yaml envs (.env.<ENV> is layered over .env)")


def project_root() -> Path:
    """Where .env and the compose files live: this checkout, or $OPS_ROOT when set."""
    return Path(os.environ["OPS_ROOT"]).resolve() if os.environ.get("OPS_ROOT") else config.ROOT


def settings(c, env: str) -> config.Settings:
    return config.load(c.config.get("stack", {}), c.config.get("envs", {}), env, root=project_root())


def target(c, env: str, task: str, kinds, family: str | None = None, over_ssh: bool = False):
    """(settings, environment) for a task that acts on `kinds` of environment; any other
    kind is refused in one line naming what to use instead (exit 2), before anything runs."""
    from .. import environment

    s = settings(c, env)
    where = environment.resolve(s.env, c.config.get("envs") or {})
    return s, environment.require(where, task, set(kinds), family, over_ssh)


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
