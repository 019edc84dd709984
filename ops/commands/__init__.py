"""Pure command builders, no I/O: argv lists for local tools, shell lines (every value
validated or shlex-quoted) for what runs on a Swarm manager or node over SSH."""
