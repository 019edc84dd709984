"""Pure command builders: each returns an argv list and performs no I/O."""
