"""The one command type of the builders: a `Line` is shell text made from argv.

`cmd(*words)` quotes every word (a user value never reaches a shell unquoted);
`all_of` (&&), `pipe` (|), `seq` (;), `either` (||), `when` (if/then/fi) and the
redirection methods combine lines. A Line is a `str`, so every runner takes it as it
is: a host's runner (runtime.runner) runs a plain command's own argv here (no shell),
or `sh -c` for a combined one, and its text on a host over SSH.

`script(text)` is for what has no argv form (a loop, a `$(...)` expansion, a shell
variable): its values must come quoted with `q`, and the text says why it is a script.
"""

from __future__ import annotations

import shlex

q = shlex.quote


class Line(str):
    """Shell text; `words` are its argv when it is one plain command."""

    words: tuple[str, ...] | None = None

    @property
    def argv(self) -> list[str]:
        """What a local process runs: the command's own argv, else `sh -c` the text."""
        return list(self.words) if self.words is not None else ["sh", "-c", str(self)]

    def __iter__(self):
        # A Line is one command, not a list of words or of characters: a caller that
        # iterates it (`[*line]`, `Popen(line)`) fails here instead of running garbage.
        raise TypeError("a Line is not iterable: use .argv, or words(line)")

    def plus(self, *more) -> Line:
        """The same command with more words (a plain command only)."""
        return cmd(*words(self), *more)

    def _with(self, suffix: str) -> Line:
        return Line(f"{self}{suffix}")

    def to(self, path: str) -> Line:
        """stdout into `path` (replaced)."""
        return self._with(f" > {q(path)}")

    def append_to(self, path: str) -> Line:
        return self._with(f" >> {q(path)}")

    def quiet(self) -> Line:
        """stdout dropped (errors still said)."""
        return self._with(" >/dev/null")

    def silent(self) -> Line:
        """stdout and stderr dropped."""
        return self._with(" >/dev/null 2>&1")

    def merged(self) -> Line:
        """stderr into stdout (one stream to read)."""
        return self._with(" 2>&1")

    def no_errors(self) -> Line:
        """stderr dropped."""
        return self._with(" 2>/dev/null")

    def or_true(self) -> Line:
        """Never fails (the caller looks at the output, or it is best effort)."""
        return self._with(" || true")

    def background(self) -> Line:
        return self._with(" &")


def cmd(*words) -> Line:
    """One command, every word quoted."""
    words = tuple(str(w) for w in words)
    line = Line(shlex.join(words))
    line.words = words
    return line


def words(command) -> list[str]:
    """The argv of a plain command: a Line made by `cmd`, or a list of words. A combined
    Line has none (it needs a shell): refused, naming it."""
    if isinstance(command, Line):
        if command.words is None:
            raise TypeError(f"a combined line has no argv of its own: {command[:60]!r}")
        return list(command.words)
    if isinstance(command, str):
        raise TypeError(f"a command is an argv list or a Line, not a string: {command[:60]!r}")
    return [str(w) for w in command]


def script(text: str) -> Line:
    """Hand-written shell, for what has no argv form; every value in it quoted (`q`)."""
    return Line(text)


def beyond_hangup(inner) -> Line:
    """`inner` run in a session of its own (setsid), its output through a temporary
    file: a cut SSH connection (sshd hangs up the session) cannot stop it half-way. The
    caller's shell waits for it and prints its output and exit status as its own."""
    # A script: the temporary file's name and the child's pid are shell variables.
    return Line(f"o=$(mktemp) || exit 1; setsid sh -c {q(str(inner))} </dev/null >\"$o\" 2>&1 & "
                "wait $!; rc=$?; cat \"$o\"; rm -f \"$o\"; exit $rc")


def _joined(sep: str, lines) -> Line:
    return Line(sep.join(str(line) for line in lines if line))


def all_of(*lines) -> Line:
    """Each in turn while they succeed (&&)."""
    return _joined(" && ", lines)


def pipe(*lines) -> Line:
    return _joined(" | ", lines)


def seq(*lines) -> Line:
    """Each in turn, whatever the last one did (;)."""
    return _joined("; ", lines)


def either(*lines) -> Line:
    """The next only when the last one failed (||)."""
    return _joined(" || ", lines)


def group(line) -> Line:
    """`{ line; }`: one unit for a redirection or an `||`."""
    return Line(f"{{ {line}; }}")


def subshell(line) -> Line:
    """`(line)`: its own shell (a `set` or `cd` stays inside)."""
    return Line(f"({line})")


def test(*words) -> Line:
    """`[ words ]`, each word quoted."""
    return Line(f"[ {shlex.join(str(w) for w in words)} ]")


def when(condition, then, otherwise=None) -> Line:
    """if condition; then ...; [else ...;] fi"""
    other = f" else {otherwise};" if otherwise is not None else ""
    return Line(f"if {condition}; then {then};{other} fi")


def is_file(path: str) -> Line:
    return test("-f", path)


def is_dir(path: str) -> Line:
    return test("-d", path)


def exists(path: str) -> Line:
    return test("-e", path)


def absent(path: str) -> Line:
    return Line(f"[ ! -e {q(path)} ]")


def mkdir_p(path: str) -> Line:
    """The directory, made readable by others whatever this shell's umask (`umask 022`
    applies to what follows it in the same line)."""
    return all_of(cmd("umask", "022"), cmd("mkdir", "-p", path))
