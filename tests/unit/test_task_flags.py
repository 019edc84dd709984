"""Every task's flags, as Invoke builds them from the signatures: `-e` means `--env`
wherever a task takes an environment (Invoke gives short flags first come, first served)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import tasks  # noqa: E402


def all_tasks(collection, prefix=""):
    for name, task in collection.tasks.items():
        yield prefix + name, task
    for name, sub in collection.collections.items():
        yield from all_tasks(sub, f"{prefix}{name}.")


# Task.get_arguments() pops each help text as it builds the flags: build them once.
ARGS = {name: {a.name: a for a in task.get_arguments()} for name, task in all_tasks(tasks.ns)}


def test_dash_e_is_env_on_every_task_that_takes_one():
    wrong, with_env = [], 0
    for name, args in ARGS.items():
        if "env" not in args:
            continue
        with_env += 1
        if "e" not in args["env"].nicknames:
            owner = next((n for n, a in args.items() if "e" in a.nicknames), None)
            wrong.append(f"{name}: -e is --{owner}")
    assert with_env > 30 and not wrong, wrong


def test_every_option_has_help():
    missing = [f"{name} --{a.name}" for name, args in ARGS.items() for a in args.values()
               if not a.help]
    assert not missing, missing


def test_a_remote_commands_io_failure_is_one_line_not_a_traceback():
    import pytest
    from invoke import Exit
    from invoke.exceptions import ThreadException
    from invoke.util import ExceptionWrapper

    from ops.tasks.common import user_errors

    @user_errors
    def task_body():
        raise ThreadException([ExceptionWrapper({}, OSError, OSError("Socket is closed"), None)])

    with pytest.raises(Exit) as caught:
        task_body()
    assert caught.value.message == "error: a remote command's I/O failed (OSError: Socket is closed)"
    assert caught.value.code == 1


def test_a_split_exec_command_is_one_line_naming_the_quoted_form():
    from ops.tasks.stack import split_exec_command

    hint = split_exec_command(["inv", "exec", "api", "ls", "-la"])
    assert hint == "inv exec: give the command as one quoted argument, e.g. `inv exec api 'ls -la'`"
    assert split_exec_command(["inv", "exec", "api", "--", "ls", "-la"]) == hint
    assert "`inv exec api 'ls -la /tmp'`" in split_exec_command(
        ["inv", "-e", "exec", "-e", "sandbox", "api", "ls", "-la", "/tmp"])
    # exec's own options, before or after the command, are Invoke's to parse
    for fine in (["inv", "exec", "api", "ls -la"], ["inv", "exec", "-i", "2", "api", "ls"],
                 ["inv", "exec", "api", "ls", "--index=2", "-e", "sandbox"], ["inv", "ps"],
                 ["inv", "--help", "exec"]):
        assert split_exec_command(fine) is None, fine


def test_a_bad_tag_is_refused_before_anything_connects():
    """deploy --tag / rollback --to: a malformed tag is exit 2 in one line, without a
    platform being opened (staging's manager is a documentation address)."""
    import pytest
    from invoke import Config, Context, Exit

    c = Context(config=Config(overrides={"envs": {"staging": {"hosts": [
        {"name": "m", "address": "203.0.113.1", "role": "manager"}]}}}))
    for task, kwargs in ((tasks.ns["deploy"], {"tag": "v1;reboot"}),
                         (tasks.ns["rollback"], {"to": "../v1"})):
        with pytest.raises(Exit) as caught:
            task(c, env="staging", **kwargs)
        assert caught.value.code == 2 and "invalid image tag" in caught.value.message
