"""The runtime of an environment: its machines and how commands reach them."""
