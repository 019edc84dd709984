"""A container to run a command in, and the host whose engine runs it (its runner:
`docker exec` as a child process here, or the same argv in an SSH session on a Swarm
node). Both give a process with Popen's interface, so pipelines of stages on either
side are written once."""

from __future__ import annotations

from dataclasses import dataclass, field

from .runtime.runner import LOCAL, Result, Runner


@dataclass(frozen=True)
class Stage:
    """One command of a pipeline and the machine it runs on."""

    argv: list[str]
    machine: Runner = field(default=LOCAL, compare=False)

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
    machine: Runner = field(default=LOCAL, compare=False)

    def exec(self, argv: list[str], stdin: bool = False, user: str | None = None) -> Stage:
        from .commands import docker

        return Stage(docker.exec_in(self.id, argv, stdin=stdin, user=user).argv, self.machine)

    def run(self, argv: list[str], input: str | None = None, timeout: float = 60,
            user: str | None = None) -> Result:
        """Run to completion; the exit status is the caller's to read."""
        return self.machine.run(self.exec(argv, stdin=input is not None, user=user).argv,
                                check=False, input=input, timeout=timeout)
