"""Invoke collections; tasks.py only assembles them."""

import atexit
import gc

# At exit, the collector's last full pass over every object the imports made (Invoke,
# the docker SDK, requests) costs ~0.1 s of each command's wall time and frees nothing
# that matters: the process is ending, and every file written here is closed by its
# `with`. Freezing them first skips that pass (measured on `inv --list`: 0.45 -> 0.36 s).
atexit.register(gc.freeze)
