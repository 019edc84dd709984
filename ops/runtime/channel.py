"""A command on a remote host, over a Fabric connection's SSH transport, that behaves
like `subprocess.Popen`: its stdin, stdout and stderr are real pipes or files of this
process, so the local pipelines (pg_dump | zstd > file, file > pg_restore, a psql
session read with select) work unchanged across SSH.

Bytes are copied by one thread per stream in fixed-size chunks (constant memory,
binary-safe: Invoke's `run` decodes output as text). `wait()` returns only once every
byte has been written where it goes, so an fsync after it covers the whole stream. A
connection that drops mid-stream ends the copy and gives exit status -1, never 0.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading

CHUNK = 1 << 20


def _fd_of(target) -> int | None:
    """A duplicate of a file object's or fd's descriptor, owned by the copier (the caller
    may close its own copy at once, as with a child process)."""
    if target is None or target in (subprocess.DEVNULL, subprocess.PIPE):
        return None
    fd = target if isinstance(target, int) else target.fileno()
    return os.dup(fd)


class ChannelProcess:
    """`Popen(command, stdin=..., stdout=..., stderr=...)` on the host behind `conn`.

    stdin: PIPE (write to `.stdin`), DEVNULL, or a readable file object / fd.
    stdout, stderr: PIPE (read `.stdout`), DEVNULL, or a writable file object / fd.
    """

    def __init__(self, conn, command: str, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.DEVNULL, window: int = 8 << 20):
        if not conn.is_connected:
            conn.open()
        self.command = command
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None
        # A large window: the sender never waits for our acknowledgements on a fast link.
        self.chan = conn.client.get_transport().open_session(window_size=window)
        self.chan.exec_command(command)
        self._readers: list[threading.Thread] = []
        self._error: BaseException | None = None

        if stdin == subprocess.PIPE:
            r, w = os.pipe()
            self.stdin = os.fdopen(w, "wb")
            self._start(self._send, r)
        elif stdin in (None, subprocess.DEVNULL):
            self.chan.shutdown_write()
        else:
            self._start(self._send, _fd_of(stdin))
        self.stdout = self._sink(stdout, self.chan.recv)
        self.stderr = self._sink(stderr, self.chan.recv_stderr)

    # -- copiers ------------------------------------------------------------------------
    def _start(self, fn, *args) -> threading.Thread:
        t = threading.Thread(target=self._guard, args=(fn, *args), daemon=True)
        t.start()
        return t

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by wait() as a failed exit
            self._error = self._error or exc
            # The session may already be gone (sshd killed): closing it then raises too,
            # and an exception leaving this thread would print a traceback.
            with contextlib.suppress(Exception):
                self.chan.close()

    def _sink(self, target, recv):
        if target == subprocess.PIPE:
            r, w = os.pipe()
            self._readers.append(self._start(self._receive, recv, w))
            return os.fdopen(r, "rb")
        self._readers.append(self._start(self._receive, recv, _fd_of(target)))
        return None

    @staticmethod
    def _receive(recv, fd: int | None) -> None:
        try:
            while data := recv(CHUNK):
                if fd is not None:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
        finally:
            if fd is not None:
                os.close(fd)

    def _send(self, fd: int) -> None:
        try:
            while data := os.read(fd, CHUNK):
                self.chan.sendall(data)
            self.chan.shutdown_write()
        finally:
            os.close(fd)

    # -- Popen's interface ----------------------------------------------------------------
    def poll(self) -> int | None:
        if self.returncode is None and self.chan.exit_status_ready() \
                and not any(t.is_alive() for t in self._readers):
            return self.wait()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        # The output copiers end when the remote side closes its streams (or the
        # connection drops); only then has every byte been written.
        for t in self._readers:
            t.join(timeout)
            if t.is_alive():
                raise subprocess.TimeoutExpired(self.command, timeout)
        status = self.chan.recv_exit_status()  # -1 when the channel closed without one
        if self._error is not None and status == 0:
            status = -1  # a local write failed: the stream is not whole
        self.returncode = status
        self.chan.close()
        return status

    def kill(self) -> None:
        """Closing the channel ends the remote command's session (sshd hangs it up)."""
        self.chan.close()

    terminate = kill
