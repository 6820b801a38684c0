"""The DuckDB example's load and calendar query, fed the golden vectors instead of a topic
(the live run is in test_live.py)."""

import datetime
import json
import sys
from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("confluent_kafka")

CLIENT = Path(__file__).resolve().parents[1]
TESTDATA = CLIENT.parents[1] / "schemas" / "testdata"
sys.path.insert(0, str(CLIENT / "examples"))
sys.path.insert(0, str(CLIENT))

import daybook_envelope  # noqa: E402
import duckdb_calendar as example  # noqa: E402


class Record:
    """What the example reads of a confluent-kafka Message."""

    def __init__(self, offset: int, value: bytes):
        self._offset, self._value = offset, value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value


def records(names):
    return [Record(i, (TESTDATA / "v1" / f"{n}.bin").read_bytes()) for i, n in enumerate(names)]


VALID = ["event_started", "event_ended_complete", "segment_reported_varint_widths", "digest_reported"]


def test_loads_every_variant_and_counts_an_event_once_per_trigger_day():
    db = duckdb.connect()
    assert example.load(db, records(VALID), None) == {"loaded": 4, "malformed": 0}
    got = db.execute("SELECT type, event_id, size, date, report->>'$.media.codec' FROM reports ORDER BY log_offset")
    assert [r[0] for r in got.fetchall()] == ["event_started", "event_ended", "segment_reported", "digest_reported"]
    # A start and an end of the same event: one event on its trigger day.
    today = datetime.date(2026, 11, 30)
    assert example.calendar(db, "cam-1", 30, today) == [{"date": "2026-11-22", "events": 1}]
    assert example.calendar(db, "cam-1", 8, today) == []
    assert example.calendar(db, "cam-2", 30, today) == []
    # Loading the same records again changes nothing.
    example.load(db, records(VALID), None)
    assert db.execute("SELECT count(*) FROM reports").fetchone()[0] == 4


def test_day_filter_keeps_reports_received_that_day():
    db = duckdb.connect()
    names = VALID + ["event_started_epoch"]  # received 1969-12-31
    assert example.load(db, records(names), datetime.date(2026, 11, 22))["loaded"] == 4
    assert example.load(db, records(names), datetime.date(1969, 12, 31))["loaded"] == 1


def test_a_newer_version_stops_the_load_before_anything_is_written():
    v1 = (TESTDATA / "v1" / "event_started.bin").read_bytes()
    newer = max(daybook_envelope.SCHEMA_VERSIONS) + 1
    batch = records(VALID) + [Record(99, bytes([newer]) + v1[1:])]
    db = duckdb.connect()
    with pytest.raises(example.NewerSchema, match=f"offset 99: unknown schema version {newer}"):
        example.load(db, batch, None)
    tables = db.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'reports'").fetchone()[0]
    assert tables == 0 or db.execute("SELECT count(*) FROM reports").fetchone()[0] == 0


def test_malformed_records_are_counted_and_skipped(capsys):
    batch = records(VALID) + [Record(98, (TESTDATA / "invalid" / "report_variant_4.bin").read_bytes())]
    db = duckdb.connect()
    assert example.load(db, batch, None) == {"loaded": 4, "malformed": 1}
    assert "offset 98" in capsys.readouterr().err
    assert json.loads(db.execute("SELECT report FROM reports WHERE log_offset = 0").fetchone()[0])["type"] == (
        "event_started"
    )
