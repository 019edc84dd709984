"""How a process runs on one host, decided once per host: `LOCAL` (this machine) or an
`SshRunner` (a host over its open Fabric connection, host keys already verified). Every
verb that starts a process goes through one of them, with the same five operations:

- `run`: to completion, output captured (in files: no pipe can fill up), with a timeout;
- `popen`: Popen's interface, for streams (pipelines of stages, a held psql session);
- `attached`: output to the terminal (logs, an interactive exec);
- `put`: a folder of files, there whole or not at all;
- `fetch`: a file's text.

A timeout, Ctrl-C or an exception ends what was started: here the whole process tree
(a docker CLI plugin runs as a process of its own, which would otherwise live on);
there the SSH session (sshd hangs the command up). Commands are argv lists or
`commands.line.Line`s: a plain Line runs as its own argv here, a combined one as
`sh -c` its text; over SSH the text is what the remote shell runs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..commands.line import Line, all_of, cmd, words
from ..errors import OpsError


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# Summaries some tools print last, after the line that says what went wrong.
SUMMARY_LINES = ("tar: Exiting with failure status due to previous errors",)
# What the host itself says, more telling than anything a tool prints after it.
HOST_ERRORS = ("No space left on device", "Read-only file system", "Disk quota exceeded")


def last_line(text: str) -> str:
    """The line that says what went wrong: a full or read-only disk wherever it was
    said, else the last line that is not a tool's summary."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in lines:
        if any(e in ln for e in HOST_ERRORS):
            return ln
    told = [ln for ln in lines if ln not in SUMMARY_LINES]
    return (told or lines or [""])[-1]


DROPPED = -1  # an SSH channel closed without an exit status: the connection went


def failure(result, local: bool = False) -> str:
    """`(exit N): the line that says why`, or that the connection dropped mid-way."""
    detail = last_line(result.stderr) or last_line(result.stdout)
    if result.returncode == DROPPED and not local:
        return ("(the SSH connection dropped before it ended: its outcome is unknown here)"
                + (f": {detail}" if detail else ""))
    return f"(exit {result.returncode}): {detail or 'no error output'}"


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


def end_tree(proc, sig: int = signal.SIGKILL) -> None:
    """`sig` to `proc` and every process below it, whatever their process group (a
    docker CLI plugin may run in one of its own). The tree is frozen first (SIGSTOP,
    read again until no new process appears): a process that forks between the read and
    the signal would escape, and an orphan is re-parented where it can no longer be
    found."""
    tree: list[int] = []
    for _ in range(10):
        found = [p for p in [proc.pid, *descendants(proc.pid)] if p not in tree]
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        tree += found
    for pid in tree:
        _signal(pid, sig)
        if sig != signal.SIGKILL:
            _signal(pid, signal.SIGCONT)  # a stopped process acts on its signal once resumed


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _text(command) -> str:
    """The command as the remote shell's text."""
    import shlex

    return str(command) if isinstance(command, str) else shlex.join(words(command))


def _argv(command) -> list[str]:
    """The command as a local argv (no shell for a plain command)."""
    return command.argv if isinstance(command, Line) else (
        ["sh", "-c", command] if isinstance(command, str) else words(command))


class Runner:
    """One host's processes. `name` says which host; `prefix`: whether its errors start
    with it (not this machine's, which are the user's own commands)."""

    name = "this machine"
    prefix = False
    local = True

    # -- what each kind provides ---------------------------------------------------------
    def popen(self, command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, env: Mapping[str, str] | None = None, own_group=False):
        raise NotImplementedError

    def end(self, proc, sig: int = signal.SIGKILL) -> None:
        raise NotImplementedError

    def attached(self, command, tty: bool = False, capture_stderr: bool = False,
                 env: Mapping[str, str] | None = None) -> Result:
        raise NotImplementedError

    # A timeout is enforced where the command runs: here by waiting, there by coreutils'
    # `timeout`, which signals the command's whole process group (closing an SSH
    # channel ends a command only once it writes); `grace` is the wait beyond it.
    TIMED_OUT = 124
    grace = 0.0

    def _bounded(self, command, timeout: float | None):
        return command

    # -- written once on top of them ------------------------------------------------------
    def label(self, what: str) -> str:
        return f"{self.name}: {what}" if self.prefix else what

    def run(self, command, what: str | None = None, *, check: bool = True,
            input: str | bytes | None = None, timeout: float | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        """Run to completion; `check` turns a non-zero exit into one line naming the host,
        `what` (else the command) and the last line of its errors. `input` is fed on
        stdin (secrets never go on a command line)."""
        what = what or _text(command)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self.popen(self._bounded(command, timeout),
                              subprocess.PIPE if input is not None else subprocess.DEVNULL,
                              out, err, env=env, own_group=True)
            try:
                if input is not None:
                    _feed(proc.stdin, input.encode() if isinstance(input, str) else input)
                rc = proc.wait(timeout=None if timeout is None else timeout + self.grace)
                if rc == self.TIMED_OUT and timeout is not None and not self.local:
                    raise subprocess.TimeoutExpired(what, timeout)
            except subprocess.TimeoutExpired as exc:
                self.end(proc)
                proc.wait()
                raise OpsError(self.label(f"{what}: timed out after {timeout:.0f}s")) from exc
            except BaseException:  # Ctrl-C, or this process ending: never leave it running
                self.end(proc, signal.SIGINT)
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.end(proc)
                    proc.wait()
                raise
            out.seek(0)
            err.seek(0)
            result = Result(tuple(_argv(command)), rc, out.read().decode(errors="replace"),
                            err.read().decode(errors="replace"))
        if check and not result.ok:
            raise OpsError(self.label(f"{what} failed {failure(result, self.local)}"))
        return result

    def put(self, folder: str, files: Mapping[str, str | bytes], what: str | None = None) -> None:
        """`files` ({name: content}) as the folder `folder`, replacing it: written under a
        temporary name, then renamed (a directory rename is atomic), so a connection cut
        mid-way never leaves a half-written folder under its name. Sent as one tar
        stream on stdin: no size limit of a command line."""
        import re

        for name in files:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
                raise ValueError(f"invalid file name {name!r}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in sorted(files.items()):
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        # A hidden name beside it: no listing of the folder's siblings (the newest release,
        # the ones to prune) ever sees a half-written one.
        parent, _, base = folder.rstrip("/").rpartition("/")
        tmp = f"{parent}/.partial-{base}" if parent else f".partial-{base}"
        self.run(all_of(cmd("rm", "-rf", tmp), cmd("mkdir", "-p", tmp),
                        cmd("tar", "-x", "--no-same-owner", "-C", tmp, "-f", "-"),
                        cmd("rm", "-rf", folder), cmd("mv", tmp, folder)),
                 what or f"upload {folder}", input=buf.getvalue())

    def fetch(self, path: str, what: str | None = None, check: bool = True) -> str:
        """The text of the file at `path` ('' when there is none)."""
        from ..commands.line import is_file, when

        return self.run(when(is_file(path), cmd("cat", path)), what or f"read {path}",
                        check=check).stdout


def _feed(stdin, data: bytes) -> None:
    try:
        stdin.write(data)
    except BrokenPipeError:
        pass  # it exited early; its status and stderr say why
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


class LocalRunner(Runner):
    """This machine: child processes; the tree below one ended as a whole."""

    def __init__(self, name: str = "this machine", prefix: bool = False):
        self.name, self.prefix = name, prefix

    def popen(self, command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, env=None, own_group=False):
        argv = _argv(command)
        try:
            # A captured command runs in a process group of its own (a terminal's Ctrl-C
            # reaches this process, which ends the tree); a pipeline's stages stay in ours.
            return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                    env=dict(env) if env is not None else None,
                                    process_group=0 if own_group else None)
        except FileNotFoundError as exc:
            raise OpsError(f"{argv[0]}: command not found (scripts/up installs what is needed)") from exc

    def end(self, proc, sig: int = signal.SIGKILL) -> None:
        end_tree(proc, sig)

    def attached(self, command, tty=False, capture_stderr=False, env=None) -> Result:
        argv = _argv(command)
        proc = self.popen(argv, None if tty else subprocess.DEVNULL, None,
                          subprocess.PIPE if capture_stderr else None, env=env)
        with proc:
            try:
                _, err = proc.communicate()
            except BaseException:
                self.end(proc, signal.SIGINT)
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.end(proc)
                raise
        return Result(tuple(argv), proc.returncode, "", (err or b"").decode(errors="replace"))


LOCAL = LocalRunner()


class SshRunner(Runner):
    """A host over its Fabric connection; each command in an SSH session channel."""

    local, prefix = False, True
    grace = 10.0

    def __init__(self, conn, name: str):
        self.conn, self.name = conn, name

    def _bounded(self, command, timeout):
        if timeout is None:
            return command
        return cmd("timeout", "-k", 5, f"{timeout:g}", "sh", "-c", _text(command))

    def popen(self, command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, env=None, own_group=False):
        from .channel import ChannelProcess

        if env is not None:
            raise ValueError("an environment is set in the remote command, not here")
        return ChannelProcess(self.conn, _text(command), stdin=stdin, stdout=stdout, stderr=stderr)

    def end(self, proc, sig: int = signal.SIGKILL) -> None:
        """Closing the channel hangs the remote command up (sshd sends it SIGHUP)."""
        proc.kill()

    def attached(self, command, tty=False, capture_stderr=False, env=None) -> Result:
        result = self.conn.run(_text(command), warn=True, pty=tty,
                               hide="stderr" if capture_stderr else False,
                               in_stream=None if tty else False)
        return Result((_text(command),), result.exited, "",
                      result.stderr if capture_stderr else "")
