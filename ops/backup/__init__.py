"""Verified Postgres backups: take, prove, list, prune, restore."""
