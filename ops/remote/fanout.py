"""One step on every host at once: a cluster's nodes are independent machines, so a
step that each does on its own (load an image, pull one) takes as long as the slowest
node, not their sum."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .hosts import Host

T = TypeVar("T")


def each_host(hosts: Iterable[Host], step: Callable[[Host], T]) -> dict[str, T]:
    """{host name: step(host)}, every host in its own thread. Every host's step runs to
    its end; then the first failure in the inventory's order is raised (its message
    names its host), so one bad node neither hides another's result nor stops it
    half-way."""
    hosts = list(hosts)
    if len(hosts) <= 1:
        return {h.name: step(h) for h in hosts}
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = [(h, pool.submit(step, h)) for h in hosts]
    for _, future in futures:
        if future.exception() is not None:
            raise future.exception()
    return {h.name: future.result() for h, future in futures}
