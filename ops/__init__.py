"""Ops toolkit: Compose stack, verified Postgres backups, blue-green Swarm deploys."""

__version__ = "0.1.0"
