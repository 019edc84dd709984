"""Example API: health endpoints, Prometheus metrics, JSON logs, graceful SIGTERM.

Standard-library HTTP server on purpose: the service is the thing the toolkit operates,
so it stays small. HTTP/1.0 (one request per connection) lets a graceful stop finish
in-flight requests without waiting on idle keep-alive sockets.
"""

import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from . import checks, jobs, logs, settings

SETTINGS = settings.load()
LOG = logs.setup(SETTINGS.log_level)
INSTANCE = socket.gethostname()
ROUTES = {"/", "/health", "/health/live", "/health/ready", "/metrics", "/work", "/jobs"}
JOB_PATH = re.compile(r"^/jobs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
MAX_BODY = 64 * 1024
REQUESTS = Counter("http_requests_total", "HTTP requests", ["route", "method", "status"])
ENQUEUED = Counter("jobs_enqueued_total", "Jobs accepted by the broker")
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["route"])
# Always 1: joined with process_start_time_seconds it dates each release (deploy
# annotations on the dashboards).
BUILD = Gauge("app_build_info", "Version and color of this instance", ["version", "color"])
BUILD.labels(SETTINGS.version, SETTINGS.color or "none").set(1)
DRAINING = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server_version = "api"
    sys_version = ""
    timeout = 30  # a stalled client cannot hold a worker (or a graceful stop) forever

    def do_GET(self):  # noqa: N802 - http.server naming
        self.handle_request("GET")

    def do_POST(self):  # noqa: N802 - http.server naming
        self.handle_request("POST")

    def handle_request(self, method):
        start = time.perf_counter()
        url = urlsplit(self.path)
        route = url.path if url.path in ROUTES else ("/jobs/{id}" if JOB_PATH.match(url.path)
                                                     else "other")
        rid = logs.request_id(self.headers.get("X-Request-ID"))
        token = logs.REQUEST_ID.set(rid)
        try:
            self._handle(method, url, route, rid, start)
        finally:
            logs.REQUEST_ID.reset(token)

    def _handle(self, method, url, route, rid, start):
        status = 500
        try:
            if method == "POST":
                status, ctype, body = self.dispatch_post(url.path, rid)
            else:
                status, ctype, body = self.dispatch(url.path, parse_qs(url.query))
        except Exception:
            LOG.exception("request failed", extra={"path": url.path})
            ctype, body = "application/json", b'{"error":"internal"}'
        try:
            self.reply(status, ctype, body)
        except ConnectionError:  # the client gave up (timeout, reset): nginx's 499
            status = 499
        elapsed = time.perf_counter() - start
        REQUESTS.labels(route, method, str(status)).inc()
        LATENCY.labels(route).observe(elapsed)
        LOG.log(
            logging.DEBUG if route.startswith("/health") or route == "/metrics" else logging.INFO,
            "request",
            extra={"method": method, "path": url.path, "status": status,
                   "duration_ms": round(elapsed * 1000, 2), "client": self.client_address[0]},
        )

    def dispatch_post(self, path, rid):
        if path != "/jobs":
            return 404, "application/json", _json({"error": "not found"})
        if SETTINGS.broker is None:
            return 503, "application/json", _json({"error": "no broker configured"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return 413, "application/json", _json({"error": f"body over {MAX_BODY} bytes"})
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return 400, "application/json", _json({"error": "body is not JSON"})
        job_id, msg = jobs.message(payload, rid, INSTANCE)
        try:
            checks.publisher(SETTINGS).publish(msg)
        except Exception as exc:  # noqa: BLE001 - the broker's failure is the answer
            LOG.warning("enqueue failed", extra={"error": str(exc)})
            return 503, "application/json", _json({"error": "broker unavailable"})
        ENQUEUED.inc()
        LOG.info("job enqueued", extra={"job_id": job_id})
        return 202, "application/json", _json({"id": job_id, "request_id": rid,
                                               "status": "queued"})

    def job(self, job_id):
        app_db = next((d for d in SETTINGS.databases if d.name == "app"), None)
        if app_db is None:
            return 503, "application/json", _json({"error": "no app database configured"})
        try:
            rows = checks.query(app_db, SETTINGS.check_timeout, jobs.LOOKUP, id=job_id)
        except Exception as exc:
            if not checks.undefined_table(exc):
                raise
            rows = []  # its migration has not run yet: nothing processed
        if not rows:
            return 404, "application/json", _json({"id": job_id, "status": "unknown"})
        payload, rid, by, worker, at = rows[0]
        return 200, "application/json", _json(
            {"id": job_id, "status": "done", "payload": payload, "request_id": rid,
             "enqueued_by": by, "processed_by": worker, "processed_at": at})

    def dispatch(self, path, query):
        if path == "/health/live":
            return 200, "application/json", _json({"status": "live"})
        if path == "/health/ready":
            deps = checks.all_dependencies(SETTINGS)
            ready = not DRAINING.is_set() and all(d["status"] == "up" for d in deps.values())
            body = {"status": "ready" if ready else "not ready", "draining": DRAINING.is_set()}
            body["failing"] = sorted(k for k, d in deps.items() if d["status"] != "up")
            return (200 if ready else 503), "application/json", _json(body)
        if path == "/health":
            deps = checks.all_dependencies(SETTINGS)
            healthy = all(d["status"] == "up" for d in deps.values())
            body = {"status": "up" if healthy else "down", "version": SETTINGS.version,
                    "instance": INSTANCE, "checks": deps}
            return (200 if healthy else 503), "application/json", _json(body)
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        if path == "/work":
            # Simulated slow request (capped), used to prove graceful shutdown.
            ms = min(max(int(query.get("ms", ["100"])[0]), 0), 10_000)
            time.sleep(ms / 1000)
            return 200, "application/json", _json({"slept_ms": ms, "instance": INSTANCE})
        match = JOB_PATH.match(path)
        if match:
            return self.job(match.group(1))
        if path == "/":
            return 200, "application/json", _json(
                {"service": "api", "version": SETTINGS.version, "instance": INSTANCE,
                 "color": SETTINGS.color or None})
        return 404, "application/json", _json({"error": "not found"})

    def reply(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App-Version", SETTINGS.version)
        self.send_header("X-Instance", INSTANCE)
        self.send_header("X-Request-ID", logs.REQUEST_ID.get())
        if SETTINGS.color:
            self.send_header("X-App-Color", SETTINGS.color)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # access logs go through do_GET as JSON
        pass


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins request threads: in-flight ones finish
    block_on_close = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst beyond it drops SYNs, which
    # the client retransmits after 1 s (seen as 1 s latency spikes under load).
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # socketserver prints a bare traceback to stderr; every log line stays JSON.
        # Reached for errors outside do_GET, e.g. a client resetting before its request.
        if isinstance(sys.exc_info()[1], ConnectionError):
            LOG.info("client disconnected", extra={"client": client_address[0]})
        else:
            LOG.exception("request handling failed", extra={"client": client_address[0]})


def main():
    server = Server(("0.0.0.0", SETTINGS.port), Handler)  # noqa: S104 - container port

    def on_term(signum, _frame):
        LOG.info("draining", extra={"signal": signal.Signals(signum).name})
        DRAINING.set()
        # shutdown() blocks until serve_forever returns, so call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    LOG.info("listening", extra={"port": SETTINGS.port, "version": SETTINGS.version,
                                 "instance": INSTANCE})
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # waits for in-flight requests
    LOG.info("stopped")


if __name__ == "__main__":
    main()
