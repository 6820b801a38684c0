#!/usr/bin/env python3
"""Loads daybook's topic into DuckDB and counts a device's events per day: the analytics twin
of the viewer's calendar (`GET /v1/devices/{cid}/calendar`). docs/topic.md walks through it.

    pip install confluent-kafka duckdb
    python duckdb_calendar.py --bootstrap 127.0.0.1:9092 --topic daybook.reports \\
        --device cam-1 [--day 2026-11-22] [--days 30] [--db reports.duckdb]

It reads every partition from the beginning up to where it ends when the run starts (no
consumer group, nothing committed), decodes each value with daybook_envelope, and inserts the
reports — all of them, or with `--day` only those received that UTC day, the nightly batch of
a daily job — into the table `reports`, keyed by (partition, log_offset) so that loading a
record twice is harmless. Then it prints the device's events per trigger day, newest first,
one JSON line per day with events: {"date": "2026-11-22", "events": 3}.

A record of a schema version the decoder does not know stops the load before anything is
written (exit status 3): upgrade daybook_envelope.py and run again. A malformed record (no
daybook writes one) is counted, reported on stderr and skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import duckdb
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daybook_envelope  # noqa: E402

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    partition   INTEGER NOT NULL,
    log_offset  BIGINT  NOT NULL,
    cid         VARCHAR NOT NULL,
    type        VARCHAR NOT NULL,   -- event_started, …, event_deleted, device_erased
    schema      USMALLINT NOT NULL,
    received_at TIMESTAMP,          -- UTC
    event_id    VARCHAR,            -- event_started, event_ended, event_deleted
    happened_at TIMESTAMP,          -- UTC: triggered_at, ended_at or started_at
    segment_id  VARCHAR,            -- segment_reported, digest_reported
    size        UBIGINT,
    duration_ms UINTEGER,
    date        DATE,               -- digest_reported
    report      JSON NOT NULL,      -- every field, as daybook tail prints it
    PRIMARY KEY (partition, log_offset)
)
"""

# Events per day as the viewer's calendar counts them: an event is counted on its trigger day
# (the event id's YYYYMMDD prefix, the day at the service's --day-offset) once, however many
# reports name it (a repeated start, a start and an end), unless its owner deleted it.
CALENDAR = """
SELECT CAST(strptime(split_part(event_id, '.', 1), '%Y%m%d') AS DATE) AS day,
       count(DISTINCT event_id) AS events
FROM reports
WHERE cid = $cid AND type IN ('event_started', 'event_ended')
  AND event_id NOT IN (SELECT event_id FROM reports WHERE cid = $cid AND type = 'event_deleted')
  AND received_at > coalesce((SELECT max(received_at) FROM reports WHERE cid = $cid AND type = 'device_erased'),
                             TIMESTAMP '0001-01-01')
GROUP BY day
HAVING day > CAST($today AS DATE) - CAST($days AS INTEGER)
ORDER BY day DESC
"""


class NewerSchema(Exception):
    """A record the decoder cannot read yet."""


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0, **config: Any) -> Iterator[Any]:
    """Every record of `topic` from the beginning to each partition's end as of the call."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"daybook-duckdb-{uuid.uuid4().hex}",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            **config,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if meta.topics[topic].error is not None:
            raise KafkaException(meta.topics[topic].error)
        ends = {}
        for p in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(ends)} of {topic} not read to their end in {timeout_s}s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            if msg.partition() not in ends:
                continue
            yield msg
            if msg.offset() + 1 >= ends[msg.partition()]:
                del ends[msg.partition()]
    finally:
        consumer.close()


def utc(instant: Optional[str]) -> Optional[datetime.datetime]:
    """An instant as the decoder prints it (RFC 3339, UTC) as a naive UTC datetime; None for
    instants outside years 0001..9999, which DuckDB's TIMESTAMP cannot hold anyway."""
    try:
        return datetime.datetime.strptime(instant, "%Y-%m-%dT%H:%M:%S.%fZ") if instant else None
    except ValueError:
        return None


def row(msg: Any, r: Dict[str, Any]) -> tuple:
    at = r.get("triggered_at") or r.get("ended_at") or r.get("started_at")
    return (
        msg.partition(),
        msg.offset(),
        r["cid"],
        r["type"],
        r["schema"],
        utc(r["received_at"]),
        r.get("event_id"),
        utc(at),
        r.get("segment_id"),
        r.get("size"),
        r.get("duration_ms"),
        r.get("date"),
        json.dumps(r),
    )


def load(db: duckdb.DuckDBPyConnection, records: Iterator[Any], day: Optional[datetime.date]) -> Dict[str, int]:
    """Decodes and inserts in one transaction; raises NewerSchema (nothing inserted) on a
    record of a newer schema version."""
    rows, malformed = [], 0
    for msg in records:
        try:
            r = daybook_envelope.decode(msg.value())
        except daybook_envelope.UnknownSchemaVersion as e:
            raise NewerSchema(f"partition {msg.partition()} offset {msg.offset()}: {e}") from e
        except daybook_envelope.Malformed as e:
            malformed += 1
            print(f"skipping partition {msg.partition()} offset {msg.offset()}: {e}", file=sys.stderr)
            continue
        received = utc(r["received_at"])
        if day is None or (received is not None and received.date() == day):
            rows.append(row(msg, r))
    db.execute(SCHEMA)
    db.execute("BEGIN TRANSACTION")
    if rows:
        db.executemany(f"INSERT OR IGNORE INTO reports VALUES ({', '.join('?' * 13)})", rows)
    db.execute("COMMIT")
    return {"loaded": len(rows), "malformed": malformed}


def calendar(db: duckdb.DuckDBPyConnection, cid: str, days: int, today: datetime.date) -> list:
    got = db.execute(CALENDAR, {"cid": cid, "today": today, "days": days}).fetchall()
    return [{"date": d.isoformat(), "events": n} for d, n in got]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT[,…]")
    p.add_argument("--topic", default="daybook.reports")
    p.add_argument("--device", required=True, help="the device whose calendar to print")
    p.add_argument("--day", type=datetime.date.fromisoformat, help="load only reports received this UTC day")
    p.add_argument("--days", type=int, default=30, help="calendar window, days back from today (UTC)")
    p.add_argument("--db", default=":memory:", help="DuckDB database file (default: in memory)")
    a = p.parse_args()

    db = duckdb.connect(a.db)
    try:
        stats = load(db, read_topic(a.bootstrap, a.topic), a.day)
    except NewerSchema as e:
        print(f"stopped, nothing loaded: {e}; upgrade daybook_envelope.py and run again", file=sys.stderr)
        return 3
    print(f"loaded {stats['loaded']} reports, skipped {stats['malformed']} malformed", file=sys.stderr)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    for day in calendar(db, a.device, a.days, today):
        print(json.dumps(day))
    return 0


if __name__ == "__main__":
    sys.exit(main())
