"""The runtime's machines: which connection each host gets, without opening any."""

from __future__ import annotations

from ops.runtime.inventory import Host
from ops.runtime.machines import Machines


def test_local_swarm_is_this_engine_for_every_node():
    ctx, manager = object(), Host("local", "localhost", role="manager")
    machines = Machines(None, manager, manager_conn=ctx, local_conn=ctx)
    assert machines.local and machines.hosts == [manager]
    assert machines.connection(Host("other", "10.0.0.9")) is ctx
    machines.warm()  # nothing to open
    machines.close()


def test_the_managers_own_connection_is_reused_not_reopened():
    class Inventory:
        manager = Host("m", "10.0.0.5", role="manager")
        hosts = [manager, Host("w", "10.0.0.6")]

    conn = type("Conn", (), {"closed": False, "close": lambda self: setattr(self, "closed", True)})()
    machines = Machines(Inventory(), Inventory.manager, manager_conn=conn)
    assert not machines.local and machines.hosts == Inventory.hosts
    assert machines.connection(Inventory.manager) is conn
    machines.close()
    assert conn.closed  # closed with the session
