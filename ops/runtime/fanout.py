"""One step on every host at once: a cluster's nodes are independent machines, so a
step that each does on its own (load an image, pull one) takes as long as the slowest
node, not their sum."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from .inventory import Host

T = TypeVar("T")


def each_host(hosts: Iterable[Host], step: Callable[[Host], T]) -> dict[str, T]:
    """{host name: step(host)}, every host in its own thread. Every host's step runs to
    its end; then the first failure in the inventory's order is raised (its message
    names its host), so one bad node neither hides another's result nor stops it
    half-way. Ctrl-C interrupts the wait at once: the threads are daemons, so the
    process does not wait for their transfers before it exits (their connections
    close with it, as a sequential transfer's did)."""
    hosts = list(hosts)
    if len(hosts) <= 1:
        return {h.name: step(h) for h in hosts}
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}

    def run(host: Host) -> None:
        try:
            results[host.name] = step(host)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors[host.name] = exc

    threads = [threading.Thread(target=run, args=(h,), name=f"host-{h.name}", daemon=True)
               for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        # Joined in short waits: the kernel may hand SIGINT to a host's thread, and a
        # main thread blocked in one long join would never run the Python handler.
        while t.is_alive():
            t.join(0.1)
    for h in hosts:
        if h.name in errors:
            raise errors[h.name]
    return {h.name: results[h.name] for h in hosts}
