"""The machines of one Swarm environment, and how each verb reaches them, decided once:
`build()` reads the environment and returns `ThisEngine` (`local-swarm`: every node is
this machine's engine, its processes children of this one) or `OverSsh` (the
inventory's hosts, one Fabric connection each). Either gives each host one
`runtime.runner.Runner`, the only way a process is started there. Every verb (deploy,
ps/health/logs/exec, db.*, monitoring, image delivery, swarm.init) asks its questions
of the object it is given (which host runs a node, which nodes are separate machines,
how to run a process there, how to get images onto it, how to reach an address inside
the cluster) and never asks again whether it is local."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future

from .inventory import Host, Inventory

# This machine's engine as the one node of a local Swarm (it advertises loopback).
THIS_ENGINE = Host("local", "localhost", role="manager", swarm_addr="127.0.0.1")


def build(env: str, where, root, connect: bool = True) -> Fleet:
    """The machines `--env` names: `where` is the resolved environment. `connect=False`:
    no SSH connection is opened until one is asked for (`inv config`)."""
    if not where.over_ssh:
        return ThisEngine()
    from .inventory import inventory
    from .ssh import open_checked

    inv = inventory(env, where.config, root)
    return OverSsh(inv, open_checked(inv.manager, inv) if connect else None)


class Fleet:
    """What the verbs ask of an environment's machines (see the two kinds below)."""

    manager: Host
    inv: Inventory | None = None
    # Whether an address inside the cluster is reached through a tunnel that must be
    # kept open (a UI printed for the user lasts only as long as this process).
    tunnels = False

    @property
    def hosts(self) -> list[Host]:
        raise NotImplementedError

    @property
    def workers(self) -> list[Host]:
        return [h for h in self.hosts if h is not self.manager]

    @property
    def manager_runner(self):
        return self.runner(self.manager)

    def runner(self, host: Host):
        """How processes run on `host` (runtime.runner: run, popen, attached, put, fetch)."""
        raise NotImplementedError

    def by_name(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}

    def warm(self) -> None:
        """Start opening every host's connection now."""

    def close(self) -> None:
        """Every connection opened here."""


class ThisEngine(Fleet):
    """`local-swarm`: this machine's engine is every node; its runner runs everything."""

    def __init__(self):
        from .runner import LocalRunner

        self.manager = THIS_ENGINE
        self._runner = LocalRunner(THIS_ENGINE.name, prefix=True)

    @property
    def hosts(self) -> list[Host]:
        return [self.manager]

    def runner(self, host: Host):
        return self._runner

    def describe(self, host: Host) -> str:
        return "this engine"

    def host_of(self, node) -> Host | None:
        return self.manager

    def separate(self, nodes: list) -> list:
        """The nodes that are machines of their own: here one, whatever Swarm lists."""
        return list(nodes[:1])

    def deliver_images(self, wanted, out, setup=None) -> dict[str, list[str]]:
        """Nothing to send: the engine that runs the stack is the one they were built
        on. What is missing is refused, naming it."""
        from ..docker_api import missing_images
        from ..errors import OpsError

        if setup is not None:
            setup(self._runner)
        missing = missing_images(list(wanted(self.manager) if callable(wanted) else wanted))
        if missing:
            raise OpsError(f"images missing on the local engine: {', '.join(missing)}")
        return {}

    def url(self, address: str, port: int, local_port: int | None, tunnels) -> str:
        """A task's address is reachable from here as it is."""
        return f"http://{address}:{port}"


class OverSsh(Fleet):
    """The inventory's hosts over SSH: one Fabric connection per host for the whole
    command, the manager's opened first (`manager_conn`, when given), the others on
    first use in a thread of their own (the handshake overlaps other work), all closed
    at the end."""

    tunnels = True

    def __init__(self, inv: Inventory, manager_conn=None):
        self.inv, self.manager = inv, inv.manager
        self._conns: dict[str, Future] = {}
        self._lock = threading.Lock()
        if manager_conn is not None:
            self._conns[self.manager.name] = done = Future()
            done.set_result(manager_conn)

    @property
    def hosts(self) -> list[Host]:
        return list(self.inv.hosts)

    def connection(self, host: Host):
        """The host's connection; a failure to open it is raised here, as one line
        naming the host."""
        return self._opening(host).result()

    def describe(self, host: Host) -> str:
        return f"{host.name} ({host.address})"

    def host_of(self, node) -> Host | None:
        """The inventory host a Swarm node is; None when it is none of them."""
        from ..facts.swarm_stack import host_for_node

        return host_for_node(node, self.inv.hosts)

    def separate(self, nodes: list) -> list:
        return list(nodes)

    def runner(self, host: Host):
        """`host`'s runner, over its connection (opened on first use)."""
        from .runner import SshRunner

        return SshRunner(self.connection(host), host.name)

    def deliver_images(self, wanted, out, setup=None) -> dict[str, list[str]]:
        """Each image streamed from here to each host lacking it, all hosts at once."""
        from ..remote.image_transfer import deliver

        return deliver(self, wanted, out, setup=setup)

    def url(self, address: str, port: int, local_port: int | None, tunnels) -> str:
        """The local end of a tunnel through the manager to address:port, entered on the
        ExitStack `tunnels` (open until it closes)."""
        from .tunnel import forward

        conn = self.connection(self.manager)
        conn.open()
        local = tunnels.enter_context(forward(conn.transport, address, port, local_port or port))
        return f"http://127.0.0.1:{local}"

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
        for host in self.inv.hosts:
            self._opening(host)

    def close(self) -> None:
        """Every connection opened here; one still opening (a host not answering) is
        closed when it opens, not waited for."""
        with self._lock:
            futures, self._conns = list(self._conns.values()), {}
        for future in futures:
            future.add_done_callback(_close_opened)


def _close_opened(future: Future) -> None:
    if future.exception() is None:
        with contextlib.suppress(Exception):
            future.result().close()
