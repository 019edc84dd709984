"""User-facing failures. Tasks turn these into one line on stderr and a non-zero exit:
USAGE (2) when the command line is wrong (a bad option value, an unknown environment,
a task the environment does not act on), FAILED (1) when the operation itself failed."""

FAILED = 1
USAGE = 2


class OpsError(Exception):
    """A failure the user can act on; its message is the whole story (no traceback)."""

    def __init__(self, message: str, code: int = FAILED):
        super().__init__(message)
        self.code = code
