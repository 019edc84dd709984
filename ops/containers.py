"""A container to run a command in, and the machine whose engine runs it: this one
(`docker exec` as a child process) or a Swarm node over its Fabric connection (the
same argv, shell-quoted, in a `ChannelProcess`). Both give a process with Popen's
interface, so pipelines of stages on either side are written once."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field

from .commands.line import words


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Machine:
    """Where a stage's argv runs."""

    name = "this machine"

    def popen(self, argv: list[str], stdin, stdout, stderr):
        return subprocess.Popen(words(argv), stdin=stdin, stdout=stdout, stderr=stderr)

    def end(self, proc) -> None:
        """The process and everything it started (`docker exec` is a CLI process whose
        exec lives on in the engine only as long as the CLI's stream)."""
        from .shell import end_tree

        end_tree(proc)

    def run(self, argv: list[str], input: str | None = None, timeout: float = 60) -> Completed:
        """Run to completion; output captured in files (no pipe can fill up)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self.popen(argv, subprocess.PIPE if input is not None else subprocess.DEVNULL,
                              out, err)
            try:
                if input is not None:
                    try:
                        proc.stdin.write(input.encode())
                    except BrokenPipeError:
                        pass  # it exited early; its status and stderr say why
                    finally:
                        try:
                            proc.stdin.close()
                        except BrokenPipeError:
                            pass
                rc = proc.wait(timeout=timeout)
            except BaseException:  # a timeout, Ctrl-C: never leave the command running
                self.end(proc)
                proc.wait()
                raise
            out.seek(0)
            err.seek(0)
            return Completed(rc, out.read().decode(errors="replace"),
                             err.read().decode(errors="replace"))


HERE = Machine()


class SshMachine(Machine):
    """A host reached over an open Fabric Connection (host keys already verified)."""

    def __init__(self, conn, name: str):
        self.conn, self.name = conn, name

    def popen(self, argv: list[str], stdin, stdout, stderr):
        from .runtime.channel import ChannelProcess

        return ChannelProcess(self.conn, shlex.join(words(argv)), stdin=stdin, stdout=stdout,
                              stderr=stderr)

    def end(self, proc) -> None:
        """Closing the channel hangs the remote command up (sshd sends it SIGHUP)."""
        proc.kill()


@dataclass(frozen=True)
class Stage:
    """One command of a pipeline and the machine it runs on."""

    argv: list[str]
    machine: Machine = field(default=HERE, compare=False)

    def popen(self, stdin, stdout, stderr):
        return self.machine.popen(self.argv, stdin, stdout, stderr)

    @property
    def program(self) -> str:
        """What to name in an error: the program inside `docker exec`, else argv[0]."""
        from .commands import docker

        return docker.program_of(self.argv)


@dataclass(frozen=True)
class Container:
    """A running container: its id and the machine whose engine runs it."""

    id: str
    machine: Machine = field(default=HERE, compare=False)

    def exec(self, argv: list[str], stdin: bool = False) -> Stage:
        from .commands import docker

        return Stage(docker.exec_in(self.id, argv, stdin=stdin).argv, self.machine)

    def run(self, argv: list[str], input: str | None = None, timeout: float = 60) -> Completed:
        return self.machine.run(self.exec(argv, stdin=input is not None).argv, input, timeout)
