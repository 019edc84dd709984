"""Jobs through the broker: the api publishes, the worker consumes and records each in
app-db. Shared by both so that the queue, the message format and the table agree.

Delivery is at least once: a message is acknowledged only after its row is committed,
and the insert is idempotent (the job id is the primary key), so a redelivery after a
worker crash records nothing twice."""

import json
import uuid

import amqp

from .reuse import Kept
from .settings import Broker

# The jobs table is made by app/migrations/app/0001.jobs.sql.
RECORD = ("INSERT INTO jobs (id, payload, request_id, enqueued_by, processed_by) "
          "VALUES (CAST(:id AS uuid), CAST(:payload AS jsonb), :request_id, :enqueued_by, :worker) "
          "ON CONFLICT (id) DO NOTHING")
LOOKUP = ("SELECT payload, request_id, enqueued_by, processed_by, "
          "to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
          "FROM jobs WHERE id = CAST(:id AS uuid)")


def connect(broker: Broker, timeout: float, heartbeat: int = 0) -> amqp.Connection:
    conn = amqp.Connection(host=broker.address, userid=broker.user, password=broker.password,
                           virtual_host=broker.vhost, connect_timeout=timeout,
                           read_timeout=timeout, write_timeout=timeout, heartbeat=heartbeat)
    conn.connect()
    return conn


def declare(channel, broker: Broker):
    """The durable queue; returns (name, messages ready, consumers)."""
    return channel.queue_declare(broker.queue, durable=True, auto_delete=False)


def message(payload, request_id: str, enqueued_by: str) -> tuple[str, amqp.Message]:
    job_id = str(uuid.uuid4())
    body = json.dumps({"id": job_id, "payload": payload}).encode()
    return job_id, amqp.Message(body, content_type="application/json", delivery_mode=2,
                                message_id=job_id,
                                application_headers={"x-request-id": request_id or "",
                                                     "x-enqueued-by": enqueued_by})


def parse(msg) -> dict:
    """The job a delivered message carries (raises ValueError when it is not one)."""
    data = json.loads(msg.body)
    uuid.UUID(str(data["id"]))
    headers = msg.properties.get("application_headers") or {}
    return {"id": str(data["id"]), "payload": json.dumps(data.get("payload")),
            "request_id": str(headers.get("x-request-id") or "") or None,
            "enqueued_by": str(headers.get("x-enqueued-by") or "") or None}


class Publisher:
    """Publishes on a kept connection (see reuse.Kept). Publishes are confirmed by the
    broker: an accepted job is on disk, not in a socket buffer."""

    def __init__(self, broker: Broker, timeout: float):
        self.broker = broker
        self.kept = Kept(lambda: self._open(timeout), lambda pair: pair[0].collect())

    def _open(self, timeout: float):
        conn = connect(self.broker, timeout)
        channel = conn.channel()
        channel.confirm_select()
        declare(channel, self.broker)
        return conn, channel

    def call(self, fn):
        return self.kept.call(lambda pair: fn(pair[1]))

    def publish(self, msg) -> None:
        self.call(lambda ch: ch.basic_publish(msg, exchange="", routing_key=self.broker.queue))

    def depth(self) -> tuple[int, int]:
        """(messages ready, consumers) of the queue."""
        _, ready, consumers = self.call(lambda ch: declare(ch, self.broker))
        return ready, consumers
