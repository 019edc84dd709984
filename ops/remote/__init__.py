"""Remote hosts over SSH (Fabric): inventory, host-key trust, connections."""
