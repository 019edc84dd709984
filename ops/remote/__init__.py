"""Verbs over SSH on an environment's hosts: Swarm membership, image delivery (node to
node or through a registry). The connections they use are ops/runtime's."""
