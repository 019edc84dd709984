"""A local port forwarded through an SSH connection to host:port on the other side.

Fabric's `forward_local` binds its listening socket in a thread it has just started and
returns at once: a request made right away can find nothing listening (connection
refused), and a port taken meanwhile by another process fails in that thread unseen,
leaving the caller talking to whoever holds it. Here the socket is bound and listening
before the context is entered, and a channel the far side refuses closes that one
connection instead of ending the forward for good."""

from __future__ import annotations

import contextlib
import socket
import threading

from fabric.tunnels import Tunnel

from ..errors import OpsError

ACCEPT_POLL = 0.2  # seconds between looks at the stop flag


def bind_loopback(preferred: int) -> socket.socket:
    """A listening socket on 127.0.0.1: `preferred` when it is free, else any port."""
    for port in (preferred, 0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(16)
        return sock
    raise OpsError("no free local port for the tunnel")


@contextlib.contextmanager
def forward(transport, remote_host: str, remote_port: int, preferred: int = 0):
    """Yield the local port; every connection to it is a direct-tcpip channel of
    `transport` (a paramiko Transport) to remote_host:remote_port, until the block ends."""
    listener = bind_loopback(preferred)
    listener.settimeout(ACCEPT_POLL)
    stop = threading.Event()
    tunnels: list[Tunnel] = []

    def accept_loop():
        while not stop.is_set():
            try:
                client, origin = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                channel = transport.open_channel("direct-tcpip", (remote_host, remote_port), origin)
            except Exception:  # noqa: BLE001 - refused or connection gone: this client only
                client.close()
                continue
            tunnel = Tunnel(channel=channel, sock=client, finished=stop)
            tunnel.daemon = True
            tunnel.start()
            # `monitoring.open` lives until Ctrl-C: keep only the connections still open.
            tunnels[:] = [t for t in tunnels if t.is_alive()] + [tunnel]

    acceptor = threading.Thread(target=accept_loop, name=f"tunnel-{remote_host}:{remote_port}",
                                daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for tunnel in tunnels:
            tunnel.join(timeout=5)
