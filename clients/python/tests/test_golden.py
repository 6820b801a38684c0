"""The Python decoder against the golden vectors in schemas/testdata/ (written by the Rust
test schemas/tests/golden.rs): every valid value decodes to the JSON `daybook tail` prints,
every invalid one fails with the documented error."""

import json
import random
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[1]
TESTDATA = CLIENT.parents[1] / "schemas" / "testdata"
sys.path.insert(0, str(CLIENT))

import daybook_envelope as de  # noqa: E402

VALID = sorted(TESTDATA.glob("v*/*.bin"))
INVALID = json.loads((TESTDATA / "invalid" / "errors.json").read_text())
ERRORS = {
    cls.kind: cls
    for cls in (de.UnknownSchemaVersion, de.Truncated, de.TrailingBytes, de.UnknownVariant, de.InvalidValue)
}


def vector_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_vectors_exist_for_every_version_this_decoder_reads():
    versions = {int(p.parent.name[1:]) for p in VALID}
    assert versions == set(de.SCHEMA_VERSIONS)


@pytest.mark.parametrize("path", VALID, ids=vector_id)
def test_golden_vector_decodes_to_tails_json(path: Path):
    value = path.read_bytes()
    want = json.loads(path.with_suffix(".json").read_text())
    assert de.decode(value) == want
    assert de.schema_version(value) == int(path.parent.name[1:]) == want["schema"]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_value_fails_as_documented(name: str):
    value = (TESTDATA / "invalid" / f"{name}.bin").read_bytes()
    with pytest.raises(de.DecodeError) as caught:
        de.decode(value)
    assert type(caught.value) is ERRORS[INVALID[name]], caught.value


@pytest.mark.parametrize("path", VALID, ids=vector_id)
def test_every_prefix_is_truncated_and_any_suffix_is_trailing(path: Path):
    value = path.read_bytes()
    for end in range(len(value)):
        with pytest.raises(de.Truncated):
            de.decode(value[:end])
    with pytest.raises(de.TrailingBytes):
        de.decode(value + b"\x00")


def test_a_newer_version_is_refused_by_name_whatever_its_body():
    """docs/topic.md, "Schema evolution": a consumer meets a version it does not know as
    UnknownSchemaVersion (stop and upgrade), never as Malformed (count and skip)."""
    v1 = (TESTDATA / "v1" / "event_started.bin").read_bytes()
    newer = max(de.SCHEMA_VERSIONS) + 1
    assert v1[0] == 1 and newer < 251
    for body in (v1[1:], b"", b"\xff\xff\xff"):
        value = bytes([newer]) + body
        assert de.schema_version(value) == newer
        with pytest.raises(de.UnknownSchemaVersion) as caught:
            de.decode(value)
        assert caught.value.version == newer
        assert not isinstance(caught.value, de.Malformed)
    with pytest.raises(de.UnknownSchemaVersion):
        de.decode(bytes([251, 0x2C, 0x01]) + v1[1:])  # version 300


def test_garbage_raises_decode_errors_only():
    rng = random.Random(16)
    seeds = [p.read_bytes() for p in VALID]
    for _ in range(3000):
        value = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            value[rng.randrange(len(value))] = rng.randrange(256)
        try:
            de.decode(bytes(value))
        except de.DecodeError:
            pass
    for _ in range(2000):
        value = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        try:
            de.decode(value)
        except de.DecodeError:
            pass


@pytest.mark.parametrize(
    "ms, text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_795_336_200_123, "2026-11-22T08:30:00.123Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (-62_135_596_800_001, "0000-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
        (2**63 - 1, "9223372036854775807ms"),
        (-(2**63), "-9223372036854775808ms"),
    ],
)
def test_instants_print_like_tail(ms: int, text: str):
    assert de.format_instant(ms) == text
