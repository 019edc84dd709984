"""The runtime of an environment: its inventory, host-key trust, checked SSH connections
and the runner, channels, tunnels, one step on every host at once, and the machines a
Swarm environment is (decided once, taken by every verb)."""
