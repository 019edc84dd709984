"""The machines of one Swarm environment and how their commands are run, decided once:
on `local-swarm` every node is this engine, reached through an Invoke Context; over SSH
each host has one Fabric connection for the whole command, the manager's opened first,
the others opened on first use in a thread of their own (the handshake overlaps other
work) and all closed at the end. Every verb (deploy, ps/health/logs/exec, db.*,
monitoring, image delivery) takes its connections from here."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future

from .inventory import Host, Inventory


def _close_opened(future: Future) -> None:
    if future.exception() is None:
        with contextlib.suppress(Exception):
            future.result().close()


class Machines:
    """`inv` None: this engine only (its Context is `local_conn`). Otherwise the
    inventory's hosts over SSH; `manager_conn`, when given, is the manager's."""

    def __init__(self, inv: Inventory | None, manager: Host, manager_conn=None, local_conn=None):
        self.inv, self.manager = inv, manager
        self._local = local_conn
        self._conns: dict[str, Future] = {}
        self._lock = threading.Lock()
        if manager_conn is not None:
            self._conns[manager.name] = done = Future()
            done.set_result(manager_conn)

    @property
    def local(self) -> bool:
        return self.inv is None

    @property
    def hosts(self) -> list[Host]:
        return [self.manager] if self.local else list(self.inv.hosts)

    def connection(self, host: Host):
        """The host's connection (this engine's Context on `local-swarm`); a failure to
        open it is raised here, as one line naming the host."""
        if self.local:
            return self._local
        return self._opening(host).result()

    def _opening(self, host: Host) -> Future:
        with self._lock:
            if host.name not in self._conns:
                from .ssh import open_checked

                future = self._conns[host.name] = Future()

                def work(inv=self.inv):
                    try:
                        future.set_result(open_checked(host, inv))
                    except BaseException as exc:  # noqa: BLE001 - raised where it is used
                        future.set_exception(exc)

                threading.Thread(target=work, name=f"ssh-{host.name}", daemon=True).start()
            return self._conns[host.name]

    def warm(self) -> None:
        """Start opening every host's connection now (a failure is said by the step that
        needs that host, if any)."""
        if not self.local:
            for host in self.inv.hosts:
                self._opening(host)

    def close(self) -> None:
        """Every connection opened here; one still opening (a host not answering) is
        closed when it opens, not waited for."""
        with self._lock:
            futures, self._conns = list(self._conns.values()), {}
        for future in futures:
            future.add_done_callback(_close_opened)
