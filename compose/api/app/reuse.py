"""One connection kept and reused, as the app's own traffic would use it: a readiness
probe then costs a round trip, not a new handshake. Guarded by a lock (neither pg8000
nor py-amqp connections are thread-safe). A call that fails drops the connection; if it
was a reused one (it may have gone stale: a restarted server) the call is tried once
more on a fresh one, and a fresh connection's failure is the answer."""

import threading


class Kept:
    def __init__(self, open_, close):
        self._open, self._close = open_, close
        self._lock = threading.Lock()
        self._conn = None

    def call(self, fn):
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                try:
                    if fresh:
                        self._conn = self._open()
                    return fn(self._conn)
                except Exception:
                    broken, self._conn = self._conn, None
                    if broken is not None:
                        try:
                            self._close(broken)
                        except Exception:  # noqa: BLE001, S110 - it is broken already
                            pass
                    if fresh or attempt == 2:
                        raise
        raise RuntimeError("unreachable")
