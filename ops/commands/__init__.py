"""Pure command builders, no I/O. Every one returns the one command type, `line.Line`
(every value validated or quoted as a word): run as its own argv by a local process or
an exec, or as shell text by a Swarm node's connection (SSH, or this engine's Context)."""
