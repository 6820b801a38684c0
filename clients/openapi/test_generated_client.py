"""Every operation of /openapi.json, through a client generated from it (openapi-python-client).

run-tests.sh generates the package `daybook_client` into DAYBOOK_CLIENT_DIR from the document
a live `daybook run` serves, then runs this file against that server (DAYBOOK_URL, with the
tokens of device DAYBOOK_CID). The typed results prove the answers parse as documented.
"""

import datetime
import json
import os
import pkgutil
import sys
import time

import httpx
import pytest

sys.path.insert(0, os.environ["DAYBOOK_CLIENT_DIR"])

from daybook_client import AuthenticatedClient  # noqa: E402
from daybook_client.api import devices, viewers  # noqa: E402
from daybook_client.api.devices import (  # noqa: E402
    digest_upload,
    end_event,
    report_batch,
    report_digest,
    report_segment,
    segment_upload,
    start_event,
)
from daybook_client.api.viewers import (  # noqa: E402
    calendar,
    day_events,
    delete_event,
    digest,
    erase_device,
    event_detail,
    get_export,
    keep_event,
    kept_events,
    list_exports,
    request_export,
    unkeep_event,
    usage,
)
from daybook_client.models import (  # noqa: E402
    Accepted,
    BatchDigest,
    BatchDigestKind,
    BatchEventEnd,
    BatchEventEndKind,
    BatchEventStart,
    BatchEventStartKind,
    BatchResponse,
    BatchSegment,
    BatchSegmentKind,
    Calendar,
    DeletionAccepted,
    DigestJson,
    DigestRequest,
    DigestUploadResponse,
    EndStatus,
    ErasureAccepted,
    ErrorBody,
    ErrorCode,
    EventDetailJson,
    EventEndRequest,
    EventMapping,
    EventsPage,
    EventStartRequest,
    EventStartResponse,
    ExportAccepted,
    ExportJson,
    ExportList,
    ExportRequest,
    KeepAccepted,
    KeptList,
    Media,
    SegmentRequest,
    SegmentUploadResponse,
    UploadRequest,
    Usage,
)

URL = os.environ["DAYBOOK_URL"]
CID = os.environ["DAYBOOK_CID"]
UTC = datetime.timezone.utc


def _now() -> datetime.datetime:
    """Now, but never in the last two minutes of a UTC day: the suite checks "today's" events
    and must not straddle the day it tests (it waits for the next day instead)."""
    now = datetime.datetime.now(UTC)
    midnight = datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time.min, UTC)
    left = (midnight - now).total_seconds()
    if left < 120:
        time.sleep(left + 1)
        now = datetime.datetime.now(UTC)
    return now.replace(microsecond=0)


NOW = _now()
TODAY = NOW.date()
# The start of TODAY: an event "a few minutes ago" is never put on the day before.
DAY_START = datetime.datetime.combine(TODAY, datetime.time.min, UTC)
SEGMENT = b"\x00" * 4096

state = {}


def device():
    return AuthenticatedClient(base_url=URL, token=os.environ["DAYBOOK_DEVICE_TOKEN"], raise_on_unexpected_status=True)


def viewer():
    return AuthenticatedClient(base_url=URL, token=os.environ["DAYBOOK_VIEWER_TOKEN"], raise_on_unexpected_status=True)


def manager():
    return AuthenticatedClient(base_url=URL, token=os.environ["DAYBOOK_MANAGER_TOKEN"], raise_on_unexpected_status=True)


def eraser():
    """A viewer that may manage the camera erased below (another than CID, whose device token the
    fuzzing still uses)."""
    return AuthenticatedClient(base_url=URL, token=os.environ["DAYBOOK_ERASER_TOKEN"], raise_on_unexpected_status=True)


def put(upload, body):
    response = httpx.put(upload.url, content=body, headers=upload.headers.additional_properties)
    assert response.status_code == 200, response.text


def test_the_generator_kept_every_operation():
    with open(os.environ["DAYBOOK_OPENAPI"]) as f:
        doc = json.load(f)
    documented = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    generated = {m.name for pkg in (devices, viewers) for m in pkgutil.iter_modules(pkg.__path__)}
    assert len(documented) == 20, documented
    assert generated == documented, f"skipped: {documented - generated}"


def test_start_event():
    r = start_event.sync(CID, client=device(), body=EventStartRequest(type_="motion", triggered_at=NOW, snapshot_size=3))
    assert isinstance(r, EventStartResponse), r
    assert r.event_id.startswith(TODAY.strftime("%Y%m%d") + f".{CID}."), r.event_id
    assert r.snapshot_upload.method == "PUT"
    put(r.snapshot_upload, b"jpg")
    state["event_id"] = r.event_id


def test_segment_upload_and_report():
    up = segment_upload.sync(CID, client=device(), body=UploadRequest(content_length=len(SEGMENT), content_type="video/mp4"))
    assert isinstance(up, SegmentUploadResponse), up
    assert up.upload.expires_at > NOW
    put(up.upload, SEGMENT)
    body = SegmentRequest(
        segment_id=up.segment_id,
        size=len(SEGMENT),
        started_at=NOW,
        duration_ms=10_000,
        media=Media(codec="h264", width=1920, height=1080, fps=25.0),
        keyframes=[0, 2048],
        events=[EventMapping(event_id=state["event_id"], index=0, start_offset=0, end_offset=len(SEGMENT))],
    )
    r = report_segment.sync(CID, client=device(), body=body)
    assert isinstance(r, Accepted) and r.accepted, r
    state["segment_id"] = up.segment_id


def test_end_event():
    body = EventEndRequest(ended_at=NOW + datetime.timedelta(seconds=10), status=EndStatus.COMPLETE)
    r = end_event.sync(CID, state["event_id"], client=device(), body=body)
    assert isinstance(r, Accepted) and r.accepted, r


def test_digest_upload_and_report():
    up = digest_upload.sync(CID, client=device(), body=UploadRequest(content_length=len(SEGMENT), content_type="video/mp4"))
    assert isinstance(up, DigestUploadResponse), up
    assert up.window.start < up.window.end
    put(up.upload, SEGMENT)
    yesterday = TODAY - datetime.timedelta(days=1)
    body = DigestRequest(date=yesterday, segment_id=up.segment_id, size=len(SEGMENT), duration_ms=60_000)
    r = report_digest.sync(CID, client=device(), body=body)
    assert isinstance(r, Accepted) and r.accepted, r
    state["digest"] = (yesterday, up.segment_id)


def test_batch():
    seg = segment_upload.sync(CID, client=device(), body=UploadRequest(content_length=100, content_type="video/mp2t"))
    start = max(NOW - datetime.timedelta(minutes=5), DAY_START)
    items = [
        BatchEventStart(kind=BatchEventStartKind.EVENT_START, type_="sound", triggered_at=start),
        BatchEventEnd(
            kind=BatchEventEndKind.EVENT_END,
            event_id=state["event_id"],
            ended_at=NOW + datetime.timedelta(seconds=12),
            status=EndStatus.ABORTED,
        ),
        BatchSegment(
            kind=BatchSegmentKind.SEGMENT,
            segment_id=seg.segment_id,
            size=100,
            started_at=start,
            duration_ms=2_000,
            media=Media(codec="h265", width=640, height=480, fps=12.5, audio_sample_rate=48_000),
        ),
        BatchDigest(
            kind=BatchDigestKind.DIGEST,
            date=TODAY - datetime.timedelta(days=2),
            segment_id=seg.segment_id,
            size=100,
            duration_ms=1_000,
        ),
    ]
    r = report_batch.sync(CID, client=device(), body=items)
    assert isinstance(r, BatchResponse), r
    assert (r.accepted, r.rejected) == (4, 0), r.to_dict()
    assert [x.status for x in r.results] == [201, 202, 202, 202]
    assert r.results[0].event_id.endswith(".sound")
    state["batch_event_id"] = r.results[0].event_id


def test_errors_parse_as_documented():
    r = start_event.sync_detailed(CID, client=viewer(), body=EventStartRequest(type_="motion", triggered_at=NOW))
    assert r.status_code == 403 and isinstance(r.parsed, ErrorBody), r
    assert r.parsed.error.code == ErrorCode.FORBIDDEN


def wait_for(fetch, ready, what):
    deadline = time.monotonic() + 20
    while True:
        value = fetch()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not projected in 20 s: {value}")
        time.sleep(0.2)


def test_calendar():
    cal = wait_for(
        lambda: calendar.sync(CID, client=viewer(), days=7),
        lambda c: isinstance(c, Calendar) and c.days[0].events >= 2,
        "today's two events",
    )
    assert cal.today == TODAY and len(cal.days) == 7 and cal.utc_offset == "+00:00"
    assert [d.date for d in cal.days] == [TODAY - datetime.timedelta(days=i) for i in range(7)]
    # The device's plan is the deployment's 30 days: the months it spans, this one first, each
    # a page of its days inside the plan.
    assert cal.plan_days == 30 and cal.months[0] == TODAY.strftime("%Y-%m"), cal
    month = calendar.sync(CID, client=viewer(), month=cal.months[0])
    assert isinstance(month, Calendar), month
    assert [d.date for d in month.days] == [TODAY - datetime.timedelta(days=i) for i in range(TODAY.day)][:30]
    assert month.days[0].events == cal.days[0].events
    past = calendar.sync_detailed(CID, client=viewer(), days=31)
    assert past.status_code == 422 and isinstance(past.parsed, ErrorBody), past


def test_day_events_pages():
    first = day_events.sync(CID, client=viewer(), date=TODAY, limit=1)
    assert isinstance(first, EventsPage) and len(first.events) == 1 and first.next_cursor, first
    second = day_events.sync(CID, client=viewer(), date=TODAY, limit=1, cursor=first.next_cursor)
    assert isinstance(second, EventsPage) and len(second.events) == 1, second
    ids = {first.events[0].event_id, second.events[0].event_id}
    assert ids == {state["event_id"], state["batch_event_id"]}
    only = day_events.sync(CID, client=viewer(), date=TODAY, type_="motion")
    assert [e.event_id for e in only.events] == [state["event_id"]]
    assert only.events[0].status == "aborted" and only.events[0].duration_ms == 12_000


def test_event_detail():
    detail = wait_for(
        lambda: event_detail.sync(state["event_id"], client=viewer(), limit=1),
        lambda d: isinstance(d, EventDetailJson) and d.segments,
        "the event's segment",
    )
    assert detail.event_id == state["event_id"] and detail.type_ == "motion"
    seg = detail.segments[0]
    assert (seg.segment_id, seg.index, seg.size, seg.keyframes) == (state["segment_id"], 0, len(SEGMENT), [0, 2048])
    assert seg.media.codec == "h264" and detail.next_cursor is None
    assert httpx.get(seg.url).content == SEGMENT


def test_usage():
    """The segments reported (the event's, and the batch's that maps none: 100 bytes) and the
    snapshot the event's start stated (3 bytes) are today's storage used, in the usage answer and
    the calendar's; the device's own token may not read it."""
    stored = len(SEGMENT) + 100 + 3
    used = wait_for(
        lambda: usage.sync(CID, client=viewer(), days=7),
        lambda u: isinstance(u, Usage) and u.bytes_ == stored,
        "the segments' and the snapshot's bytes",
    )
    assert used.today == TODAY and len(used.days) == 7, used
    assert (used.days[0].date, used.days[0].bytes_) == (TODAY, stored)
    cal = calendar.sync(CID, client=viewer(), days=7)
    assert [(d.date, d.bytes_) for d in cal.days] == [(d.date, d.bytes_) for d in used.days]
    refused = usage.sync_detailed(CID, client=device())
    assert refused.status_code == 403 and isinstance(refused.parsed, ErrorBody), refused


def test_digest():
    date, segment_id = state["digest"]
    d = wait_for(lambda: digest.sync(CID, date, client=viewer()), lambda d: isinstance(d, DigestJson), "the digest")
    assert (d.date, d.segment_id, d.size, d.duration_ms) == (date, segment_id, len(SEGMENT), 60_000)
    assert httpx.get(d.url).content == SEGMENT


def test_keep_event():
    """A managing viewer keeps the event (a read-only one is refused), the kept list names it
    and the event is marked, then the un-keep empties the list."""
    event_id = state["event_id"]
    refused = keep_event.sync_detailed(event_id, client=viewer())
    assert refused.status_code == 403 and isinstance(refused.parsed, ErrorBody), refused
    assert refused.parsed.error.code == ErrorCode.FORBIDDEN
    r = keep_event.sync(event_id, client=manager())
    assert isinstance(r, KeepAccepted) and r.accepted and r.kept and r.event_id == event_id, r
    kept = wait_for(
        lambda: kept_events.sync(CID, client=viewer()),
        lambda k: isinstance(k, KeptList) and [e.event_id for e in k.events] == [event_id],
        "the keep",
    )
    assert kept.events[0].kept and kept.next_cursor is None
    assert event_detail.sync(event_id, client=viewer()).kept
    r = unkeep_event.sync(event_id, client=manager())
    assert isinstance(r, KeepAccepted) and r.accepted and not r.kept, r
    wait_for(lambda: kept_events.sync(CID, client=viewer()), lambda k: isinstance(k, KeptList) and not k.events, "the un-keep")


def test_exports():
    """A managing viewer asks for today's export (a read-only viewer is refused on every export
    route), it is listed, and turns ready with a download URL that serves a tar."""
    today = TODAY
    body = ExportRequest(from_=today, to=today)
    refused = request_export.sync_detailed(CID, client=viewer(), body=body)
    assert refused.status_code == 403 and isinstance(refused.parsed, ErrorBody), refused
    assert list_exports.sync_detailed(CID, client=viewer()).status_code == 403
    reversed_range = ExportRequest(from_=today, to=today - datetime.timedelta(days=1))
    bad = request_export.sync_detailed(CID, client=manager(), body=reversed_range)
    assert bad.status_code == 422 and bad.parsed.error.code == ErrorCode.INVALID_RANGE, bad
    r = request_export.sync(CID, client=manager(), body=body)
    assert isinstance(r, ExportAccepted) and r.accepted and r.state == "pending", r
    assert get_export.sync_detailed(CID, r.export_id, client=viewer()).status_code == 403
    done = wait_for(
        lambda: get_export.sync(CID, r.export_id, client=manager()),
        lambda x: isinstance(x, ExportJson) and x.state != "pending",
        "the export",
    )
    assert done.state == "ready" and done.from_ == today and done.to == today, done
    archive = httpx.get(done.download_url)
    assert archive.status_code == 200 and len(archive.content) == done.bytes_
    assert archive.content[257:262] == b"ustar", "a tar archive"
    listed = list_exports.sync(CID, client=manager(), limit=1)
    assert isinstance(listed, ExportList) and [x.export_id for x in listed.exports] == [r.export_id], listed


def test_delete_event():
    """Runs last: the batch's event is deleted by a viewer that may manage the camera, refused to
    one that may only read it, and leaves the day once projected."""
    event_id = state["batch_event_id"]
    refused = delete_event.sync_detailed(event_id, client=viewer())
    assert refused.status_code == 403 and isinstance(refused.parsed, ErrorBody), refused
    assert refused.parsed.error.code == ErrorCode.FORBIDDEN
    r = delete_event.sync(event_id, client=manager())
    assert isinstance(r, DeletionAccepted) and r.accepted and r.event_id == event_id, r
    page = wait_for(
        lambda: day_events.sync(CID, client=viewer(), date=TODAY),
        lambda p: isinstance(p, EventsPage) and event_id not in [e.event_id for e in p.events],
        "the deletion",
    )
    assert [e.event_id for e in page.events] == [state["event_id"]]
    gone = delete_event.sync_detailed(event_id, client=manager())
    assert gone.status_code == 404 and isinstance(gone.parsed, ErrorBody), gone


def test_erase_device():
    """Runs last: a camera is erased by a viewer that may manage it, refused to one that may not."""
    cid = os.environ["DAYBOOK_ERASE_CID"]
    refused = erase_device.sync_detailed(cid, client=manager())
    assert refused.status_code == 403 and isinstance(refused.parsed, ErrorBody), refused
    assert refused.parsed.error.code == ErrorCode.FORBIDDEN
    r = erase_device.sync(cid, client=eraser())
    assert isinstance(r, ErasureAccepted) and r.accepted and r.cid == cid, r
    cal = wait_for(lambda: calendar.sync(cid, client=eraser()), lambda c: c is not None, "the calendar")
    assert all(d.events == 0 for d in cal.days), cal
