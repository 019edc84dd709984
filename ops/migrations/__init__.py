"""Schema migrations as a step of `inv up`, `inv migrate` and `inv deploy`: what is
pending (asked of the app's own migrate command, in its image), linted with squawk before
it runs (lint.py: which findings refuse, and the safe way), then applied."""
