"""An Invoke Context for the local engine that stops on Ctrl-C.

Invoke's Local runner forwards Ctrl-C by writing ^C to the child's stdin and keeps
waiting: without a PTY nothing reads it, so the interrupt is swallowed and a deploy
would carry on. Fabric re-raises it when there is no PTY; this does the same, after
passing SIGINT to the child's whole process tree (the shell defers a signal until its
own child exits, and that child holds the output pipes Invoke waits on)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from invoke import Context, Local


def parent_of(stat: str) -> int:
    """The PPID field of /proc/<pid>/stat (after the parenthesised command name)."""
    return int(stat.rpartition(")")[2].split()[1])


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every process below `pid`, found through /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in proc.glob("[0-9]*/stat"):
        try:
            children.setdefault(parent_of(entry.read_text()), []).append(int(entry.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not a process
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class InterruptibleLocal(Local):
    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            for pid in [process.pid, *descendants(process.pid)]:
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        raise interrupt


def context(config) -> Context:
    """A Context with `config` (cloned, so the caller's is untouched) and the runner above."""
    cfg = config.clone()
    cfg.runners.local = InterruptibleLocal
    return Context(config=cfg)
