"""Decoder of daybook's topic value: the versioned bincode envelope of one report.

Pure standard library (Python 3.8+); copy this file into any project. The format is specified
in docs/topic.md of the daybook repository, and this decoder is tested against the golden
vectors in schemas/testdata/.

    import daybook_envelope
    report = daybook_envelope.decode(msg.value())
    # {'cid': 'cam-1', 'type': 'event_started', 'schema': 1,
    #  'received_at': '2026-11-22T08:30:00.373Z', 'event_id': '20261122.cam-1.1795336200123.motion',
    #  'event_type': 'motion', 'triggered_at': '2026-11-22T08:30:00.123Z'}

`decode` returns exactly what `daybook tail` prints for the record, without the record's
`partition` and `offset`: the same keys, instants as the same RFC 3339 strings (UTC,
milliseconds, `Z`), days as `YYYY-MM-DD`, integers as `int`, `fps` as `float`.

Errors are subclasses of `DecodeError` (a `ValueError`):

* `UnknownSchemaVersion` (`.version`): written by a newer daybook. Stop and upgrade this
  decoder; skipping would lose valid reports (docs/topic.md, "Schema evolution").
* `Malformed`, with the subclasses `Truncated`, `TrailingBytes`, `UnknownVariant`,
  `InvalidValue`: the bytes are not a valid envelope of their version. No daybook writes such
  a value; count it and skip it.
"""

from __future__ import annotations

import base64
import datetime
import re
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = [
    "SCHEMA_VERSIONS",
    "DecodeError",
    "UnknownSchemaVersion",
    "Malformed",
    "Truncated",
    "TrailingBytes",
    "UnknownVariant",
    "InvalidValue",
    "decode",
    "schema_version",
    "format_instant",
]

#: The schema versions this decoder reads.
SCHEMA_VERSIONS = frozenset({1, 2, 3, 4, 5})


class DecodeError(ValueError):
    """The value could not be decoded. `kind` names the reason as testdata/invalid/errors.json does."""

    kind = "decode_error"


class UnknownSchemaVersion(DecodeError):
    """The envelope's schema version is newer (or other) than any this decoder knows."""

    kind = "unknown_schema_version"

    def __init__(self, version: int):
        super().__init__(f"unknown schema version {version} (this decoder reads {sorted(SCHEMA_VERSIONS)})")
        self.version = version


class Malformed(DecodeError):
    """The bytes are not a valid envelope of their schema version."""

    kind = "malformed"


class Truncated(Malformed):
    """The value ends before the envelope does."""

    kind = "truncated"


class TrailingBytes(Malformed):
    """Bytes follow a complete envelope."""

    kind = "trailing_bytes"


class UnknownVariant(Malformed):
    """An enum index (report kind, end status) outside the version's variants."""

    kind = "unknown_variant"


class InvalidValue(Malformed):
    """A byte sequence that is not a value of its type: a bad varint marker or option tag,
    invalid UTF-8, an impossible date, an identifier that breaks its syntax."""

    kind = "invalid_value"


class _Reader:
    """bincode 2, standard configuration: little-endian, variable-width integers."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise Truncated(f"{what}: needs {n} bytes at offset {self.pos}, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, bits: int, what: str) -> int:
        """A varint: a first byte below 251 is the value; 251, 252, 253, 254 announce a
        little-endian u16, u32, u64, u128. A marker wider than the type is an error."""
        at = self.pos
        first = self.take(1, what)[0]
        if first < 251:
            return first
        if first == 255:
            raise InvalidValue(f"{what}: reserved varint marker 255 at offset {at}")
        width = 2 << (first - 251)  # bytes: 2, 4, 8, 16
        if width * 8 > bits:
            raise InvalidValue(f"{what}: marker {first} (a u{width * 8}) at offset {at} in a u{bits}")
        return int.from_bytes(self.take(width, what), "little")

    def int64(self, what: str) -> int:
        """A zigzag-encoded i64: 0, -1, 1, -2, … are written as 0, 1, 2, 3, …"""
        n = self.uint(64, what)
        return (n >> 1) ^ -(n & 1)

    def f64(self, what: str) -> float:
        return struct.unpack("<d", self.take(8, what))[0]

    def string(self, what: str) -> str:
        n = self.uint(64, f"{what} length")
        at = self.pos
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidValue(f"{what}: invalid UTF-8 at offset {at}: {e.reason}") from None

    def present(self, what: str) -> bool:
        """An `Option` tag: 0 absent, 1 present."""
        at = self.pos
        tag = self.take(1, what)[0]
        if tag > 1:
            raise InvalidValue(f"{what}: option tag {tag} at offset {at}")
        return tag == 1

    def variant(self, what: str, count: int) -> int:
        """An enum variant index (a varint u32), by declaration position."""
        at = self.pos
        index = self.uint(32, what)
        if index >= count:
            raise UnknownVariant(f"{what}: variant {index} at offset {at}, known 0..{count - 1}")
        return index


# Instants: i64 milliseconds since the Unix epoch, printed as chrono prints them: RFC 3339 in
# UTC with milliseconds; four-digit years for 0000..=9999, else signed (+10000, -0001);
# outside chrono's range (years -262143..=262142) as "<ms>ms".
_MIN_YEAR, _MAX_YEAR = -262143, 262142
_MS_PER_DAY = 86_400_000


def _civil_from_days(days: int) -> Tuple[int, int, int]:
    """(year, month, day) of `days` after 1970-01-01, proleptic Gregorian, any year."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def format_instant(ms: int) -> str:
    """An instant (epoch milliseconds) as `daybook tail` prints it."""
    days, rest = divmod(ms, _MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return f"{ms}ms"
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    y = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{y}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def _instant(r: _Reader, what: str) -> str:
    return format_instant(r.int64(what))


def _token(pattern: str, rule: str) -> Callable[[_Reader, str], str]:
    compiled = re.compile(pattern)

    def read(r: _Reader, what: str) -> str:
        s = r.string(what)
        if not compiled.fullmatch(s):
            raise InvalidValue(f"{what}: {s!r} is not {rule}")
        return s

    return read


_DEVICE_ID = "[A-Za-z0-9_-]{1,64}"
_EVENT_TYPE = "[a-z0-9_]{1,32}"
_device_id = _token(_DEVICE_ID, "1 to 64 of A-Z a-z 0-9 _ -")
_event_type = _token(_EVENT_TYPE, "1 to 32 of a-z 0-9 _")
_segment_id = _token("[A-Za-z0-9_-]{1,80}", "1 to 80 of A-Z a-z 0-9 _ -")
_EVENT_ID = re.compile(
    rf"([0-9]{{4}})([0-9]{{2}})([0-9]{{2}})\.{_DEVICE_ID}\.(0|[1-9][0-9]{{0,14}})([+-][0-9]{{4}})?\.{_EVENT_TYPE}"
)


def _date_days(year: int, month: int, day: int) -> Optional[int]:
    """Days from 1970-01-01 to a valid date of years 1..=9999, else None."""
    try:
        return (datetime.date(year, month, day) - datetime.date(1970, 1, 1)).days
    except ValueError:
        return None


def _event_id(r: _Reader, what: str) -> str:
    """`YYYYMMDD.<device>.<trigger epoch ms>[±HHMM].<type>`; the day is the trigger's local day
    (or an earlier filing day for a camera whose clock ran fast, never before year 1000), so
    never more than one day after the trigger's UTC day."""
    s = r.string(what)
    m = _EVENT_ID.fullmatch(s) if len(s) <= 200 else None
    days = m and _date_days(int(m[1]), int(m[2]), int(m[3]))
    if days is None or int(m[1]) < 1000 or days - int(m[4]) // _MS_PER_DAY > 1 or (m[5] is None and days - int(m[4]) // _MS_PER_DAY < -1):
        raise InvalidValue(f"{what}: {s!r} is not YYYYMMDD.<device>.<trigger ms>.<type> with a matching day")
    return s


def _day(r: _Reader, what: str) -> str:
    """A day: the number YYYYMMDD as a varint u32, printed YYYY-MM-DD (years 1..=9999)."""
    n = r.uint(32, what)
    year, month, day = n // 10_000, n // 100 % 100, n % 100
    if _date_days(year, month, day) is None:
        raise InvalidValue(f"{what}: {n} is not a date YYYYMMDD")
    return f"{year:04d}-{month:02d}-{day:02d}"


def _utc_offset(r: _Reader, what: str) -> str:
    """Minutes east of UTC, a zigzag varint i32, printed `+HH:MM` / `-HH:MM`."""
    n = r.uint(32, what)
    minutes = (n >> 1) ^ -(n & 1)
    if abs(minutes) > 24 * 60:
        raise InvalidValue(f"{what}: {minutes} minutes is not a UTC offset")
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _i64(r: _Reader, what: str) -> int:
    return r.int64(what)


def _u32(r: _Reader, what: str) -> int:
    return r.uint(32, what)


def _u64(r: _Reader, what: str) -> int:
    return r.uint(64, what)


def _fps(r: _Reader, what: str) -> Optional[float]:
    v = r.f64(what)
    # JSON has no NaN or infinity; tail prints them as null (ingest refuses them anyway).
    return v if v - v == 0 else None


def _option(read: Callable[[_Reader, str], Any]) -> Callable[[_Reader, str], Any]:
    return lambda r, what: read(r, what) if r.present(what) else None


def _vec(read: Callable[[_Reader, str], Any]) -> Callable[[_Reader, str], List[Any]]:
    def read_vec(r: _Reader, what: str) -> List[Any]:
        n = r.uint(64, f"{what} length")
        return [read(r, f"{what}[{i}]") for i in range(n)]

    return read_vec


_Fields = List[Tuple[str, Callable[[_Reader, str], Any]]]


def _struct(fields: _Fields) -> Callable[[_Reader, str], Dict[str, Any]]:
    return lambda r, what: {name: read(r, f"{what}.{name}") for name, read in fields}


def _enum(values: List[str]) -> Callable[[_Reader, str], str]:
    return lambda r, what: values[r.variant(what, len(values))]


# Schema version 1, field by field in wire order (docs/topic.md). Report variants by index:
# (value of `type`, fields).
_V1_REPORTS: List[Tuple[str, _Fields]] = [
    (
        "event_started",
        [("cid", _device_id), ("event_id", _event_id), ("event_type", _event_type), ("triggered_at", _instant)],
    ),
    (
        "event_ended",
        [("cid", _device_id), ("event_id", _event_id), ("ended_at", _instant), ("status", _enum(["complete", "aborted"]))],
    ),
    (
        "segment_reported",
        [
            ("cid", _device_id),
            ("segment_id", _segment_id),
            ("size", _u64),
            ("started_at", _instant),
            ("duration_ms", _u32),
            (
                "media",
                _struct(
                    [
                        ("codec", lambda r, what: r.string(what)),
                        ("width", _u32),
                        ("height", _u32),
                        ("fps", _fps),
                        ("audio_sample_rate", _option(_u32)),
                    ]
                ),
            ),
            ("keyframes", _vec(_u64)),
            (
                "events",
                _vec(
                    _struct([("event_id", _event_id), ("index", _u32), ("start_offset", _u64), ("end_offset", _u64)])
                ),
            ),
        ],
    ),
    (
        "digest_reported",
        [("cid", _device_id), ("date", _day), ("segment_id", _segment_id), ("size", _u64), ("duration_ms", _u32)],
    ),
]


def _with(fields: _Fields, after: str, added: _Fields) -> _Fields:
    """`fields` with `added` inserted after the field named `after`."""
    i = [name for name, _ in fields].index(after) + 1
    return fields[:i] + added + fields[i:]


# Schema version 2: version 1 plus the camera's `utc_offset` on every report (after the
# report's own time, or after `date` for a digest) and `clock_skew_ms` on an event start.
_V2_REPORTS: List[Tuple[str, _Fields]] = [
    ("event_started", _with(_V1_REPORTS[0][1], "triggered_at", [("utc_offset", _utc_offset), ("clock_skew_ms", _option(_i64))])),
    ("event_ended", _with(_V1_REPORTS[1][1], "ended_at", [("utc_offset", _utc_offset)])),
    ("segment_reported", _with(_V1_REPORTS[2][1], "started_at", [("utc_offset", _utc_offset)])),
    ("digest_reported", _with(_V1_REPORTS[3][1], "date", [("utc_offset", _utc_offset)])),
]


def _sealed(r: _Reader, what: str) -> str:
    """A sealed signing secret: bytes (varint length, then the bytes), printed as base64."""
    n = r.uint(64, f"{what} length")
    if n > 256:
        raise InvalidValue(f"{what}: a sealed secret of {n} bytes (at most 256)")
    return base64.b64encode(r.take(n, what)).decode("ascii")


def _bool(r: _Reader, what: str) -> bool:
    at = r.pos
    b = r.take(1, what)[0]
    if b > 1:
        raise InvalidValue(f"{what}: bool byte {b} at offset {at}")
    return b == 1


_REPORT_KINDS = [
    "event_started",
    "event_ended",
    "segment_reported",
    "digest_reported",
    "subscription_set",
    "subscription_deleted",
    "subscription_dead_lettered",
    "dead_letters_released",
    "event_deleted",
    "event_kept",
    "event_unkept",
    "device_erased",
    "plan_set",
    "export_requested",
    "export_completed",
]


def _blob(r: _Reader, what: str) -> str:
    """Opaque bytes (a log record's value): varint length, then the bytes; printed as base64."""
    n = r.uint(64, f"{what} length")
    return base64.b64encode(r.take(n, what)).decode("ascii")


def _u16(r: _Reader, what: str) -> int:
    return r.uint(16, what)


def _text(r: _Reader, what: str) -> str:
    return r.string(what)

_subscription_id = _token("[A-Za-z0-9_-]{1,64}", "1 to 64 of A-Z a-z 0-9 _ -")

# Schema version 3: version 2 plus the notification subscriptions' changes as variants 4 to 7
# (they have no device: `cid` is null).
_V3_REPORTS: List[Tuple[str, _Fields]] = _V2_REPORTS + [
    (
        "subscription_set",
        [
            ("subscription_id", _subscription_id),
            ("url", lambda r, what: r.string(what)),
            ("secrets", _vec(_sealed)),
            ("devices", _vec(_device_id)),
            ("device_prefixes", _vec(_device_id)),
            ("kinds", _vec(_enum(_REPORT_KINDS))),
            ("event_types", _vec(_event_type)),
            ("cooldown_ms", _u64),
            ("max_age_ms", _option(_u64)),
            ("paused", _bool),
            ("created_at", _instant),
        ],
    ),
    ("subscription_deleted", [("subscription_id", _subscription_id)]),
    (
        "subscription_dead_lettered",
        [
            ("subscription_id", _subscription_id),
            ("webhook_id", _text),
            ("reason", _text),
            ("attempts", _u32),
            ("record_schema", _u16),
            ("record", _blob),
        ],
    ),
    (
        "dead_letters_released",
        [
            ("subscription_id", _subscription_id),
            ("purged", _vec(_text)),
            ("replayed", _vec(_struct([("webhook_id", _text), ("record_schema", _u16), ("record", _blob)]))),
        ],
    ),
]

# Schema version 4: version 3 plus the owner's reports as variants 8 to 12 (each about a
# device: `cid` is set).
_V4_REPORTS: List[Tuple[str, _Fields]] = _V3_REPORTS + [
    ("event_deleted", [("cid", _device_id), ("event_id", _event_id)]),
    ("event_kept", [("cid", _device_id), ("event_id", _event_id)]),
    ("event_unkept", [("cid", _device_id), ("event_id", _event_id)]),
    ("device_erased", [("cid", _device_id)]),
    ("plan_set", [("cid", _device_id), ("retention_days", _u32)]),
]

_export_id = _token("[A-Za-z0-9_-]{1,64}", "1 to 64 of A-Z a-z 0-9 _ -")


def _tagged(variants: List[Tuple[str, _Fields]]) -> Callable[[_Reader, str], Dict[str, Any]]:
    """An enum with fields, as serde writes it in JSON: `{variant_name: {fields}}`."""

    def read_tagged(r: _Reader, what: str) -> Dict[str, Any]:
        name, fields = variants[r.variant(what, len(variants))]
        return {name: _struct(fields)(r, f"{what}.{name}")}

    return read_tagged


# Schema version 5: version 4 with the snapshot's stated size at the end of an event start, plus
# exports as variants 13 and 14 (each about a device).
_V5_REPORTS: List[Tuple[str, _Fields]] = [
    ("event_started", _V4_REPORTS[0][1] + [("snapshot_size", _option(_u64))])
] + _V4_REPORTS[1:] + [
    ("export_requested", [("cid", _device_id), ("export_id", _export_id), ("from", _day), ("to", _day)]),
    (
        "export_completed",
        [
            ("cid", _device_id),
            ("export_id", _export_id),
            ("requested_at", _instant),
            ("from", _day),
            ("to", _day),
            (
                "outcome",
                _tagged(
                    [
                        ("ready", [("key", _text), ("bytes", _u64), ("events", _u32)]),
                        ("failed", [("reason", _text)]),
                    ]
                ),
            ),
            ("expires_at", _instant),
        ],
    ),
]

# What an older record reads as today: the keys later versions added, at their defaults.
_BEFORE_V5_DEFAULTS: Dict[str, Dict[str, Any]] = {"event_started": {"snapshot_size": None}}

# What a version 1 record reads as today: the keys version 2 added, at their defaults.
_V1_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "event_started": {"utc_offset": "+00:00", "clock_skew_ms": None},
    "event_ended": {"utc_offset": "+00:00"},
    "segment_reported": {"utc_offset": "+00:00"},
    "digest_reported": {"utc_offset": "+00:00"},
}


def _decoder(version: int, reports: List[Tuple[str, _Fields]]) -> Callable[[_Reader], Dict[str, Any]]:
    def decode_version(r: _Reader) -> Dict[str, Any]:
        kind, fields = reports[r.variant("report", len(reports))]
        body = _struct(fields)(r, kind)
        received_at = _instant(r, "received_at")
        out = {"cid": body.get("cid"), "type": kind, "schema": version, "received_at": received_at}
        for name, value in body.items():
            out.setdefault(name, value)
        # Version 5: the report's retention in days, None when it carries none (older
        # versions). A plan_set's own field of that name is the same figure.
        retention_days = _option(_u32)(r, "retention_days") if version >= 5 else None
        out.setdefault("retention_days", retention_days)
        if version == 1:
            for name, value in _V1_DEFAULTS[kind].items():
                out.setdefault(name, value)
        if version < 5:
            for name, value in _BEFORE_V5_DEFAULTS.get(kind, {}).items():
                out.setdefault(name, value)
        return out

    return decode_version


_DECODERS: Dict[int, Callable[[_Reader], Dict[str, Any]]] = {
    1: _decoder(1, _V1_REPORTS),
    2: _decoder(2, _V2_REPORTS),
    3: _decoder(3, _V3_REPORTS),
    4: _decoder(4, _V4_REPORTS),
    # Schema version 5: version 5's reports, the envelope followed by the report's retention
    # (an option of a varint u32, days).
    5: _decoder(5, _V5_REPORTS),
}


def schema_version(value: bytes) -> int:
    """The envelope's schema version (its varint u16 prefix), without decoding the rest. The
    `daybook.schema` record header carries the same number as decimal text."""
    return _Reader(bytes(value)).uint(16, "schema version")


def decode(value: bytes) -> Dict[str, Any]:
    """Decodes one topic value into the object `daybook tail` prints for it (less `partition`
    and `offset`). Raises `UnknownSchemaVersion` for a version this decoder does not know and
    a `Malformed` subclass for bytes that are no envelope."""
    r = _Reader(bytes(value))
    version = r.uint(16, "schema version")
    decoder = _DECODERS.get(version)
    if decoder is None:
        raise UnknownSchemaVersion(version)
    out = decoder(r)
    if r.pos != len(r.data):
        raise TrailingBytes(f"{len(r.data) - r.pos} trailing bytes after the envelope")
    return out
