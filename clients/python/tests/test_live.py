"""The Python decoder and the DuckDB example against a live topic (Kafka protocol; tansu in
the test command). Skipped unless DAYBOOK_TEST_KAFKA=HOST:PORT names a broker.

Two ways to drive it:

* DAYBOOK_BIN=path/to/daybook (what clients/python/run-tests.sh does): starts `daybook run`
  on a fresh topic in a temp dir, posts reports of every kind through the device API, reads
  the topic with `daybook tail`, then checks that the decoder prints what tail prints for
  every record and that the DuckDB example's calendar is the viewer API's.
* DAYBOOK_TEST_TOPIC=topic and DAYBOOK_TEST_TAIL=file of `daybook tail --from-beginning`
  lines for it: only the decoder-versus-tail comparison, on an existing topic.

Needs confluent-kafka and duckdb.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

KAFKA = os.environ.get("DAYBOOK_TEST_KAFKA")
BIN = os.environ.get("DAYBOOK_BIN")
pytestmark = pytest.mark.skipif(not KAFKA, reason="DAYBOOK_TEST_KAFKA is not set")
if KAFKA:
    pytest.importorskip("confluent_kafka")
    pytest.importorskip("duckdb")

CLIENT = Path(__file__).resolve().parents[1]
TESTDATA = CLIENT.parents[1] / "schemas" / "testdata"
EXAMPLE = CLIENT / "examples" / "duckdb_calendar.py"
sys.path.insert(0, str(CLIENT))
sys.path.insert(0, str(CLIENT / "examples"))

import daybook_envelope  # noqa: E402


def rfc3339(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Daybook:
    """`daybook run` on a fresh Kafka topic, in a temp dir, until close()."""

    def __init__(self, binary: str, kafka: str, tmp: Path):
        self.bin, self.kafka, self.tmp = binary, kafka, tmp
        self.topic = f"daybook-python-{uuid.uuid4().hex[:12]}"
        self.log_url = f"kafka://{kafka}/{self.topic}"
        self.data = tmp / "data"
        self.stderr = open(tmp / "daybook.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "run", "--data-dir", str(self.data), "--log", self.log_url]
            + ["--http-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
        )
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"daybook run exited before listening: {(tmp / 'daybook.log').read_text()[-2000:]}")
        self.http = "http://" + json.loads(line)["http"]

    def token(self, *args: str) -> str:
        out = subprocess.run(
            [self.bin, "token", *args, "--data-dir", str(self.data)], check=True, capture_output=True, text=True
        )
        return out.stdout.strip().splitlines()[-1]

    def call(self, method: str, path: str, token: str, body: Optional[dict] = None) -> Dict[str, Any]:
        req = urllib.request.Request(
            self.http + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path} -> {e.code} {e.read()!r}") from None
        return json.loads(text) if text.strip() else {}

    def tail(self, limit: int) -> List[dict]:
        out = subprocess.run(
            [self.bin, "tail", "--log", self.log_url, "--data-dir", str(self.data), "--from-beginning"]
            + ["--limit", str(limit)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def post_reports(d: Daybook) -> None:
    """Reports of every kind from two devices, over three trigger days."""
    dev1, dev2 = d.token("device", "cam-1"), d.token("device", "cam-2")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=123_000)
    times = [now - datetime.timedelta(days=2, minutes=5), now - datetime.timedelta(days=1), now - datetime.timedelta(minutes=1)]

    def start(token: str, cid: str, kind: str, at: datetime.datetime) -> str:
        body = {"type": kind, "triggered_at": rfc3339(at)}
        return d.call("POST", f"/v1/devices/{cid}/events", token, body)["event_id"]

    ids = [start(dev1, "cam-1", "motion", t) for t in times]
    assert start(dev1, "cam-1", "motion", times[2]) == ids[2], "a repeated start gets the same id"
    ids.append(start(dev1, "cam-1", "sound", times[2]))
    start(dev2, "cam-2", "person", times[2])
    end = {"ended_at": rfc3339(times[0] + datetime.timedelta(seconds=42)), "status": "complete"}
    d.call("POST", f"/v1/devices/cam-1/events/{ids[0]}/end", dev1, end)
    end = {"ended_at": rfc3339(times[2] + datetime.timedelta(seconds=5)), "status": "aborted"}
    d.call("POST", f"/v1/devices/cam-1/events/{ids[3]}/end", dev1, end)

    size = 5 * 1024 * 1024 * 1024
    upload = d.call("POST", "/v1/devices/cam-1/segments/uploads", dev1, {"content_length": size, "content_type": "video/mp4"})
    segment = {
        "segment_id": upload["segment_id"],
        "size": size,
        "started_at": rfc3339(times[2]),
        "duration_ms": 10_000,
        "media": {"codec": "h264", "width": 1920, "height": 1080, "fps": 29.97, "audio_sample_rate": 48_000},
        "keyframes": [0, 250, 70_000, 2**32 + 1],
        "events": [
            {"event_id": ids[2], "index": 0, "start_offset": 0, "end_offset": 1_000_000},
            {"event_id": ids[3], "index": 0, "start_offset": 65_536, "end_offset": size},
        ],
    }
    d.call("POST", "/v1/devices/cam-1/segments", dev1, segment)
    upload = d.call("POST", "/v1/devices/cam-2/segments/uploads", dev2, {"content_length": 1, "content_type": "video/mp4"})
    segment = {
        "segment_id": upload["segment_id"],
        "size": 1,
        "started_at": rfc3339(times[2]),
        "duration_ms": 1,
        "media": {"codec": "h265", "width": 640, "height": 480, "fps": 25},
        "events": [],
    }
    d.call("POST", "/v1/devices/cam-2/segments", dev2, segment)
    upload = d.call("POST", "/v1/devices/cam-1/digests/uploads", dev1, {"content_length": 1000, "content_type": "video/mp4"})
    yesterday = (now - datetime.timedelta(days=1)).date().isoformat()
    digest = {"date": yesterday, "segment_id": upload["segment_id"], "size": 1000, "duration_ms": 60_000}
    d.call("POST", "/v1/devices/cam-1/digests", dev1, digest)


@pytest.fixture(scope="module")
def daybook():
    if not BIN:
        pytest.skip("DAYBOOK_BIN is not set")
    with tempfile.TemporaryDirectory(prefix="daybook-python-") as tmp:
        d = Daybook(BIN, KAFKA, Path(tmp))
        try:
            post_reports(d)
            yield d
        finally:
            d.close()


@pytest.fixture(scope="module")
def topic_and_tail(request):
    """(topic, tail lines by (partition, offset))."""
    if BIN:
        d = request.getfixturevalue("daybook")
        import duckdb_calendar

        count = sum(1 for _ in duckdb_calendar.read_topic(KAFKA, d.topic))
        lines = d.tail(count)
        topic = d.topic
    elif os.environ.get("DAYBOOK_TEST_TOPIC") and os.environ.get("DAYBOOK_TEST_TAIL"):
        topic = os.environ["DAYBOOK_TEST_TOPIC"]
        lines = [json.loads(x) for x in Path(os.environ["DAYBOOK_TEST_TAIL"]).read_text().splitlines() if x.strip()]
    else:
        pytest.skip("set DAYBOOK_BIN, or DAYBOOK_TEST_TOPIC and DAYBOOK_TEST_TAIL")
    return topic, {(x["partition"], x["offset"]): x for x in lines}


def test_decoder_prints_what_tail_prints_for_every_record(topic_and_tail):
    import duckdb_calendar

    topic, tail = topic_and_tail
    seen = set()
    types = set()
    for msg in duckdb_calendar.read_topic(KAFKA, topic):
        where = (msg.partition(), msg.offset())
        decoded = daybook_envelope.decode(msg.value())
        want = {k: v for k, v in tail[where].items() if k not in ("partition", "offset")}
        assert decoded == want, f"record {where}"
        headers = {k: v.decode() for k, v in msg.headers() or []}
        assert headers["daybook.type"] == decoded["type"]
        assert int(headers["daybook.schema"]) == decoded["schema"] == daybook_envelope.schema_version(msg.value())
        assert msg.key().decode() == decoded["cid"]
        seen.add(where)
        types.add(decoded["type"])
    assert seen == set(tail), "tail and the topic hold the same records"
    if BIN:
        assert types == {"event_started", "event_ended", "segment_reported", "digest_reported"}


def test_duckdb_example_counts_what_the_viewer_calendar_shows(daybook):
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", KAFKA, "--topic", daybook.topic, "--device", "cam-1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    analytics = [json.loads(line) for line in out.stdout.splitlines()]
    assert sum(day["events"] for day in analytics) == 4, out
    viewer = daybook.token("viewer", "cam-1")
    deadline = time.monotonic() + 60
    while True:  # the projector writes the store asynchronously
        days = daybook.call("GET", "/v1/devices/cam-1/calendar?days=30", viewer)["days"]
        # The example counts events; the calendar's storage used (`bytes`) is not its business.
        calendar = [{"date": day["date"], "events": day["events"]} for day in days if day["events"] > 0]
        if calendar == analytics or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert calendar == analytics


def test_duckdb_example_stops_at_a_newer_schema_version(tmp_path):
    """docs/topic.md, "Schema evolution": a v1 consumer meeting a v2 record stops, loads
    nothing and says why."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"daybook-python-v2-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": KAFKA})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    v1 = (TESTDATA / "v1" / "event_started.bin").read_bytes()
    producer = Producer({"bootstrap.servers": KAFKA})
    newer = max(daybook_envelope.SCHEMA_VERSIONS) + 1
    for value, schema in [(v1, b"1"), (bytes([newer]) + v1[1:], str(newer).encode())]:
        producer.produce(topic, key=b"cam-1", value=value, headers=[("daybook.type", b"event_started"), ("daybook.schema", schema)])
    assert producer.flush(30) == 0
    db = tmp_path / "reports.duckdb"
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", KAFKA, "--topic", topic, "--device", "cam-1", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 3, out
    assert f"offset 1: unknown schema version {newer}" in out.stderr
    assert out.stdout == ""
