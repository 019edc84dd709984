"""User-facing failures. Tasks turn these into one line on stderr and a non-zero exit."""


class OpsError(Exception):
    """A failure the user can act on; its message is the whole story (no traceback)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
