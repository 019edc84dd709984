"""Maintenance mode: the gateway answers 503 with a page and Retry-After for every path
but /health*, switched by a reload (no restart; requests in flight finish)."""

from __future__ import annotations

import json

from invoke import Collection, task

from ..facts.values import number_option
from .common import ENV_HELP, platform, user_errors


def _say(state: dict, env: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(state, indent=2))
        return
    print(f"maintenance mode ({env}): " + (f"on since {state['since']}" if state["on"] else "off")
          + (f" ({state['note']})" if state.get("note") else ""))


@task(name="on", help={"message": "the page's text (one line; default: a short apology)",
                       "retry_after": "seconds clients are told to wait (Retry-After; default 300)",
                       "json": "print JSON", "env": ENV_HELP})
@user_errors
def on(c, message=None, retry_after=None, json_=False, env="local"):
    """Answer 503 with a maintenance page for everything but /health* (a gateway reload)."""
    from ..maintenance import check_message

    text = check_message(message)
    seconds = number_option(300 if retry_after is None else retry_after, "--retry-after", 1, 86400,
                            integer=True)
    with platform(c, env) as p:
        _say(p.maintenance(True, text, seconds), env, json_)


@task(name="off", help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def off(c, json_=False, env="local"):
    """Serve the app again (a gateway reload)."""
    with platform(c, env) as p:
        _say(p.maintenance(False), env, json_)


@task(name="status", help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def status(c, json_=False, env="local"):
    """Whether maintenance mode is on, and since when."""
    with platform(c, env) as p:
        _say(p.maintenance_state(), env, json_)


ns = Collection("maintenance", on, off, status)
