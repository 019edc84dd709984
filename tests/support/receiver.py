"""A webhook receiver on this machine for the monitoring tests and bench: records every
Alertmanager POST with its arrival time. Containers reach it as host.docker.internal
(Alertmanager has that host mapped), so it listens on every interface."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self):
        self.posts: list[tuple[float, dict]] = []  # (arrival time.time(), body)
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append((time.time(), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - containers reach it via the bridge
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return self.url_via("host.docker.internal")

    def url_via(self, host: str) -> str:
        """Its URL at an address of this machine (a sandbox network's gateway, say)."""
        return f"http://{host}:{self.server.server_address[1]}/alerts"

    def seen(self) -> list[tuple[str, str]]:
        return [(a["labels"].get("alertname"), a["status"]) for _, p in self.posts
                for a in p.get("alerts", [])]

    def wait_for(self, alertname: str, status: str, after: float = 0.0,
                 timeout: float = 120, **labels: str) -> tuple[float, dict]:
        """The first (arrival time, alert) of `alertname` in `status` (with `labels`, when
        given) that arrived at or after `after`; TimeoutError naming what did arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, post in list(self.posts):
                for alert in post.get("alerts", []):
                    if (at >= after and alert["labels"].get("alertname") == alertname
                            and alert["status"] == status
                            and all(alert["labels"].get(k) == v for k, v in labels.items())):
                        return at, alert
            time.sleep(0.1)
        raise TimeoutError(f"no {status} {alertname} notice within {timeout:.0f}s "
                           f"(got {self.seen()})")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
