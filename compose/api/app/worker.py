"""Example worker: consumes the broker's `jobs` queue and records each job in app-db.

At least once: a message is acknowledged after its row is committed (the insert is
idempotent). SIGTERM stops taking new messages, finishes the one in hand and leaves;
unacknowledged messages go back to the queue for another worker. While connected, the
loop touches /tmp/worker.alive every second: the container's healthcheck reads it."""

import logging
import signal
import socket
import threading
from pathlib import Path

import pg8000.native

from . import jobs, logs, settings

LOG = logs.setup(settings.load().log_level, "worker")
INSTANCE = socket.gethostname()
ALIVE = Path("/tmp/worker.alive")  # noqa: S108 - a tmpfs inside the container
STOP = threading.Event()
PREFETCH = 10


def connect_db(db: settings.Database, timeout: float) -> pg8000.native.Connection:
    # The table is a migration's (app/migrations/app/): until it has run, a job's insert
    # fails and the message stays queued, recorded once the schema is there.
    return pg8000.native.Connection(db.user, host=db.host, port=db.port, database=db.database,
                                    password=db.password, timeout=timeout)


def consume(broker: settings.Broker, db: settings.Database, timeout: float) -> None:
    """One session: connect to both, consume until STOP or a connection breaks."""
    pg = connect_db(db, timeout)
    conn = jobs.connect(broker, timeout, heartbeat=30)
    try:
        channel = conn.channel()
        jobs.declare(channel, broker)
        channel.basic_qos(prefetch_size=0, prefetch_count=PREFETCH, a_global=False)

        def handle(msg):
            try:
                job = jobs.parse(msg)
            except (ValueError, KeyError, TypeError):
                LOG.error("malformed message dropped", extra={"body": repr(msg.body[:200])})
                channel.basic_reject(msg.delivery_tag, requeue=False)
                return
            token = logs.REQUEST_ID.set(job["request_id"] or "")
            try:
                pg.run(jobs.RECORD, worker=INSTANCE, **job)
                channel.basic_ack(msg.delivery_tag)
                LOG.info("job processed", extra={"job_id": job["id"]})
            finally:
                logs.REQUEST_ID.reset(token)

        tag = channel.basic_consume(broker.queue, callback=handle)
        LOG.info("consuming", extra={"queue": broker.queue, "broker": broker.address})
        while not STOP.is_set():
            ALIVE.touch()
            try:
                conn.drain_events(timeout=1)
            except TimeoutError:
                pass
            conn.heartbeat_tick()  # sends ours when due; raises if the broker's stopped
        channel.basic_cancel(tag)
    finally:
        ALIVE.unlink(missing_ok=True)
        for c in (conn, pg):
            try:
                c.close()
            except Exception:  # noqa: BLE001, S110 - leaving anyway
                pass


def main():
    cfg = settings.load()
    if cfg.broker is None:
        raise SystemExit("BROKER_HOST is not set: nothing to consume")
    db = settings.database("app")

    def on_term(signum, _frame):
        LOG.info("stopping", extra={"signal": signal.Signals(signum).name})
        STOP.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    delay = 1.0
    while not STOP.is_set():
        try:
            consume(cfg.broker, db, cfg.check_timeout)
            delay = 1.0
        except Exception as exc:  # noqa: BLE001 - reconnect, with backoff, whatever broke
            LOG.warning("connection lost; reconnecting",
                        extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay})
            STOP.wait(delay)
            delay = min(delay * 2, 30.0)
    LOG.info("stopped")


if __name__ == "__main__":
    logging.captureWarnings(True)
    main()
