//! Segment files and the frames in them.
//!
//! A segment is a file named by the offset of its first record (`00000000000000000001.seg`),
//! holding frames back to back:
//!
//! ```text
//! u32 body length | u32 CRC-32C of the body | body
//! body: u64 offset | i64 timestamp ms | u16 schema | u16 key length | u16 kind length
//!       | key | kind | value
//! ```
//!
//! All integers are little-endian. Offsets rise from frame to frame, by one except where a
//! commit failed: its offsets are never handed out again, so the next frame skips them. A
//! segment's name is the offset after the last frame of the segment before it (the first
//! segment: the log's first offset), so the names alone show that no segment is missing;
//! its first frame is at or after its name. Only the newest segment is ever written; a frame
//! is acknowledged once the fsync that follows its write returned, so after a crash the newest
//! segment may end in a torn or unsynced frame, never one that was acknowledged: recovery cuts
//! the file at the first frame that does not check.
//!
//! This module is the one owner of the format: the log itself, and the backups, restores and
//! checks of `daybook` (through [`super::files`]) read and write frames only through it.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use seams::{Consumed, LogRecord, Position};

/// Bytes before the body.
pub const HEADER: usize = 8;
/// Bytes of the body before the key.
const FIXED: usize = 8 + 8 + 2 + 2 + 2;
/// The largest body accepted on read (a corrupt length must not allocate gigabytes).
pub const MAX_BODY: usize = 64 << 20;
/// Segment file suffix.
const SUFFIX: &str = ".seg";

/// The file name of the segment whose first offset is `base`.
pub fn file_name(base: i64) -> String {
    format!("{base:020}{SUFFIX}")
}

pub fn path_of(dir: &Path, base: i64) -> PathBuf {
    dir.join(file_name(base))
}

/// The base offsets of the segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(SUFFIX).and_then(|b| b.parse::<i64>().ok()) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Appends the frame of `record` at `offset` to `out`.
pub fn encode(out: &mut Vec<u8>, offset: i64, ts_ms: i64, record: &LogRecord) -> Result<(), String> {
    let key = record.key.as_bytes();
    let kind = record.report_kind.as_bytes();
    let too_long = |what: &str, n: usize| format!("record {what} of {n} bytes is too long for the log");
    let key_len = u16::try_from(key.len()).map_err(|_| too_long("key", key.len()))?;
    let kind_len = u16::try_from(kind.len()).map_err(|_| too_long("kind", kind.len()))?;
    let body_len = FIXED + key.len() + kind.len() + record.value.len();
    if body_len > MAX_BODY {
        return Err(too_long("value", record.value.len()));
    }
    let start = out.len();
    out.reserve(HEADER + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&ts_ms.to_le_bytes());
    out.extend_from_slice(&record.schema.to_le_bytes());
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&kind_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(kind);
    out.extend_from_slice(&record.value);
    let crc = crc32c::crc32c(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One frame read back: its record and where it ends in the file.
#[derive(Debug)]
pub struct Frame {
    pub consumed: Consumed,
    /// File position just past the frame.
    pub end: u64,
}

/// Why a frame could not be read at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Fewer bytes than a whole frame: the end of what was written (or a torn write).
    Incomplete,
    /// The bytes are there but do not check (torn write, or corruption).
    Corrupt(String),
}

/// Parses the frame at the start of `buf` (read from file position `at`).
pub fn decode(buf: &[u8], at: u64) -> Result<Frame, Stop> {
    if buf.len() < HEADER {
        return Err(Stop::Incomplete);
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if !(FIXED..=MAX_BODY).contains(&body_len) {
        return Err(Stop::Corrupt(format!("frame at byte {at} has an impossible length {body_len}")));
    }
    let Some(body) = buf.get(HEADER..HEADER + body_len) else { return Err(Stop::Incomplete) };
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != crc {
        return Err(Stop::Corrupt(format!("frame at byte {at} fails its checksum")));
    }
    let offset = i64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let ts_ms = i64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let schema = u16::from_le_bytes(body[16..18].try_into().expect("2 bytes"));
    let key_len = u16::from_le_bytes(body[18..20].try_into().expect("2 bytes")) as usize;
    let kind_len = u16::from_le_bytes(body[20..22].try_into().expect("2 bytes")) as usize;
    let rest = &body[FIXED..];
    if key_len + kind_len > rest.len() {
        return Err(Stop::Corrupt(format!("frame at byte {at} has field lengths past its end")));
    }
    let (key, rest) = rest.split_at(key_len);
    let (kind, value) = rest.split_at(kind_len);
    Ok(Frame {
        consumed: Consumed {
            position: Position { partition: 0, offset },
            key: String::from_utf8_lossy(key).into_owned(),
            report_kind: String::from_utf8_lossy(kind).into_owned(),
            schema,
            value: value.to_vec(),
            timestamp_ms: ts_ms,
        },
        end: at + (HEADER + body_len) as u64,
    })
}

/// Reads frames of one segment sequentially from a file position, in blocks. Bytes past the
/// durable head may still change (a failed commit is cut and written over): a reader that
/// stops there [`rewind`](Reader::rewind)s, dropping what it read ahead.
#[derive(Debug)]
pub struct Reader {
    file: File,
    /// File position of `buf[0]`.
    buf_at: u64,
    buf: Vec<u8>,
    /// File position of the next frame.
    pub pos: u64,
}

/// Bytes read from the file at a time (more when one frame is larger).
const BLOCK: usize = 256 << 10;

impl Reader {
    pub fn open(path: &Path, pos: u64) -> io::Result<Self> {
        Ok(Self { file: File::open(path)?, buf_at: pos, buf: Vec::new(), pos })
    }

    /// Goes back to file position `pos` (at or after the start of its buffer) and forgets the
    /// bytes read ahead of it, so the next read takes them from the file again.
    pub fn rewind(&mut self, pos: u64) {
        self.pos = pos;
        let keep = pos.saturating_sub(self.buf_at) as usize;
        self.buf.truncate(keep.min(self.buf.len()));
    }

    /// The next frame, or why there is none (yet).
    pub fn next_frame(&mut self) -> io::Result<Result<Frame, Stop>> {
        loop {
            let skip = (self.pos - self.buf_at) as usize;
            match decode(&self.buf[skip.min(self.buf.len())..], self.pos) {
                Ok(frame) => {
                    self.pos = frame.end;
                    return Ok(Ok(frame));
                }
                Err(Stop::Incomplete) => {
                    // Refill from `pos`: at least a block, or the whole frame if it is larger.
                    let have = self.buf.len().saturating_sub(skip);
                    let want = if have >= HEADER {
                        let body_len = u32::from_le_bytes(self.buf[skip..skip + 4].try_into().expect("4 bytes"));
                        (HEADER + body_len as usize).max(BLOCK)
                    } else {
                        BLOCK
                    };
                    // Only what the file holds past `pos`: a reader at the tail refills after
                    // every commit, and zero-filling a whole block each time was the top entry
                    // of the burst's CPU profile.
                    let avail = self.file.metadata()?.len().saturating_sub(self.pos) as usize;
                    let want = want.min(avail);
                    if want <= have {
                        return Ok(Err(Stop::Incomplete));
                    }
                    let before = have;
                    self.buf.drain(..skip.min(self.buf.len()));
                    self.buf_at = self.pos;
                    self.buf.resize(want, 0);
                    let mut filled = before;
                    while filled < want {
                        let n = self.file.read_at(&mut self.buf[filled..], self.buf_at + filled as u64)?;
                        if n == 0 {
                            break;
                        }
                        filled += n;
                    }
                    self.buf.truncate(filled);
                    if filled == before {
                        return Ok(Err(Stop::Incomplete));
                    }
                }
                Err(stop) => return Ok(Err(stop)),
            }
        }
    }
}

/// What a full scan of a segment found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Records that check (offsets rising).
    pub records: u64,
    /// The offset after the last good record (`None`: no records).
    pub next: Option<i64>,
    /// The first and last timestamps.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Bytes up to the end of the last good frame.
    pub valid_len: u64,
}

/// Scans a whole segment; stops at the first frame that does not check (the returned
/// `Stop`, if any, says why).
pub fn scan(path: &Path) -> io::Result<(Scan, Option<Stop>)> {
    scan_from(path, Scan::default())
}

/// [`scan`] resumed: from `from.valid_len` (the end of a frame that checked), expecting the
/// offset `from.next`, adding to `from`'s counts. Frames that checked are never rewritten
/// (a torn tail lies only after them), so a scan can go on where an earlier one stopped.
pub fn scan_from(path: &Path, from: Scan) -> io::Result<(Scan, Option<Stop>)> {
    let mut reader = Reader::open(path, from.valid_len)?;
    let mut scan = from;
    loop {
        match reader.next_frame()? {
            Ok(frame) => {
                let c = &frame.consumed;
                if let Some(next) = scan.next.filter(|&n| c.position.offset < n) {
                    let why = format!("offset {} follows {} at byte {}", c.position.offset, next - 1, scan.valid_len);
                    return Ok((scan, Some(Stop::Corrupt(why))));
                }
                scan.records += 1;
                scan.next = Some(c.position.offset + 1);
                scan.first_ts.get_or_insert(c.timestamp_ms);
                scan.last_ts = Some(c.timestamp_ms);
                scan.valid_len = frame.end;
            }
            Err(Stop::Incomplete) => {
                let len = reader.file.metadata()?.len();
                let stop = (len > scan.valid_len).then_some(Stop::Incomplete);
                return Ok((scan, stop));
            }
            Err(stop) => return Ok((scan, Some(stop))),
        }
    }
}

/// Reads the next whole frame of a stream (a segment file, or a copy of one) into `buf`,
/// header and body, as stored, and returns its offset: `Ok(None)` at a clean end of the
/// stream, `Err(Stop)` when the bytes there are not a whole frame that checks. For copying
/// frames verbatim (backups) and checking copies (restores).
pub fn read_raw(r: &mut impl io::Read, buf: &mut Vec<u8>) -> io::Result<Result<Option<i64>, Stop>> {
    buf.clear();
    buf.resize(HEADER, 0);
    let got = read_full(r, &mut buf[..])?;
    if got == 0 {
        return Ok(Ok(None));
    }
    if got < HEADER {
        return Ok(Err(Stop::Incomplete));
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if !(FIXED..=MAX_BODY).contains(&body_len) {
        return Ok(Err(Stop::Corrupt(format!("an impossible frame length {body_len}"))));
    }
    buf.resize(HEADER + body_len, 0);
    if read_full(r, &mut buf[HEADER..])? < body_len {
        return Ok(Err(Stop::Incomplete));
    }
    if crc32c::crc32c(&buf[HEADER..]) != raw_crc(buf) {
        return Ok(Err(Stop::Corrupt("a frame that fails its checksum".into())));
    }
    Ok(Ok(Some(raw_offset(buf))))
}

/// The offset of a frame [`read_raw`] read.
pub fn raw_offset(frame: &[u8]) -> i64 {
    i64::from_le_bytes(frame[HEADER..HEADER + 8].try_into().expect("8 bytes"))
}

/// The append time (Unix ms) of a frame [`read_raw`] read: never earlier than the frame before.
pub fn raw_ts(frame: &[u8]) -> i64 {
    i64::from_le_bytes(frame[HEADER + 8..HEADER + 16].try_into().expect("8 bytes"))
}

/// The checksum of a frame [`read_raw`] read: a short fingerprint of the record.
pub fn raw_crc(frame: &[u8]) -> u32 {
    u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"))
}

fn read_full(r: &mut impl io::Read, out: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match r.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete => f.write_str("a torn frame"),
            Self::Corrupt(why) => f.write_str(why),
        }
    }
}

/// The timestamp of a segment's first record, if it has one that checks.
pub fn first_ts(path: &Path) -> io::Result<Option<i64>> {
    Ok(Reader::open(path, 0)?.next_frame()?.ok().map(|f| f.consumed.timestamp_ms))
}

/// Fsyncs a directory, so that files created, renamed or removed in it stay so.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, value_len: usize) -> LogRecord {
        LogRecord {
            key: format!("cam-{i}"),
            report_kind: "event_started".into(),
            schema: 2,
            value: vec![i as u8; value_len],
        }
    }

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1_700_000_000_000, &record(1, 40)).unwrap();
        let frame = decode(&buf, 0).unwrap();
        assert_eq!(frame.end, buf.len() as u64);
        let c = frame.consumed;
        assert_eq!((c.position.offset, c.timestamp_ms, c.schema), (7, 1_700_000_000_000, 2));
        assert_eq!((c.key.as_str(), c.report_kind.as_str(), c.value.len()), ("cam-1", "event_started", 40));
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], 0).unwrap_err(), Stop::Incomplete, "cut at {cut}");
        }
        for flip in HEADER..buf.len() {
            let mut bad = buf.clone();
            bad[flip] ^= 0x40;
            assert!(matches!(decode(&bad, 0), Err(Stop::Corrupt(_))), "flip at {flip}");
        }
    }

    #[test]
    fn a_scan_stops_at_a_torn_tail_and_large_frames_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        let mut buf = Vec::new();
        for i in 0..100 {
            // Some frames larger than a read block.
            let len = if i % 10 == 3 { BLOCK + 1000 } else { 30 };
            encode(&mut buf, 1 + i as i64, 1000 + i as i64, &record(i, len)).unwrap();
        }
        let whole = buf.len();
        let mut torn = buf.clone();
        encode(&mut torn, 101, 2000, &record(100, 30)).unwrap();
        torn.truncate(whole + 17);
        fs::write(&path, &torn).unwrap();
        let (scan, stop) = scan(&path).unwrap();
        assert_eq!(stop, Some(Stop::Incomplete));
        assert_eq!((scan.records, scan.next, scan.valid_len), (100, Some(101), whole as u64));
        assert_eq!((scan.first_ts, scan.last_ts), (Some(1000), Some(1099)));
        let mut r = Reader::open(&path, 0).unwrap();
        for i in 0..100 {
            assert_eq!(r.next_frame().unwrap().unwrap().consumed.position.offset, 1 + i);
        }
        assert_eq!(r.next_frame().unwrap().unwrap_err(), Stop::Incomplete);
    }

    #[test]
    fn segments_list_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for base in [500, 1, 20] {
            fs::write(path_of(dir.path(), base), b"").unwrap();
        }
        fs::write(dir.path().join("groups"), b"").unwrap();
        assert_eq!(list(dir.path()).unwrap(), [1, 20, 500]);
    }
}
