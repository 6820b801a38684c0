//! The embedded log's files, for tools that work on a data directory rather than through a
//! running [`EmbeddedLog`](super::EmbeddedLog): backups, restores, their checks, and
//! rebuilds. The log may be running meanwhile; everything here reads only what is durable.
//! The formats themselves live in [`segment`](super::segment) (frames),
//! [`head`](super::head) and the group files; this is the one way in for other crates.
//!
//! Every `dir` here is the log's directory (`DATA_DIR/log`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use super::{groups, head, segment, FIRST_OFFSET};
pub use segment::{raw_crc, raw_offset, raw_ts, read_raw, Stop};

/// The base offsets of the segments, oldest first: a segment's base is the offset after the
/// last record of the one before it, so consecutive bases leave no offset uncovered.
pub fn segments(dir: &Path) -> io::Result<Vec<i64>> {
    segment::list(dir)
}

/// The file of the segment whose base is `base`.
pub fn segment_path(dir: &Path, base: i64) -> PathBuf {
    segment::path_of(dir, base)
}

/// The offset after the last durable record: the head the writer published, or, for a log no
/// writer of this format has opened (restored, migrated), the end of the frames that check.
pub fn durable_head(dir: &Path) -> io::Result<i64> {
    if let Some(h) = head::read(dir)? {
        return Ok(h.durable);
    }
    let bases = segment::list(dir)?;
    let Some(&newest) = bases.last() else { return Ok(FIRST_OFFSET) };
    Ok(segment::scan(&segment::path_of(dir, newest))?.0.next.unwrap_or(newest))
}

/// The offset of the oldest record (`None`: no records).
pub fn oldest(dir: &Path) -> io::Result<Option<i64>> {
    for base in segment::list(dir)? {
        let file = match fs::File::open(segment::path_of(dir, base)) {
            Ok(f) => f,
            // Deleted by retention since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Ok(Some(offset)) = read_raw(&mut BufReader::new(file), &mut Vec::new())? {
            return Ok(Some(offset));
        }
    }
    Ok(None)
}

/// The checksum of the record at `offset` (see [`raw_crc`]), if the log holds it.
pub fn crc_at(dir: &Path, offset: i64) -> io::Result<Option<u32>> {
    let bases = segment::list(dir)?;
    let Some(&base) = bases.iter().rev().find(|&&b| b <= offset) else { return Ok(None) };
    let mut r = BufReader::with_capacity(1 << 20, fs::File::open(segment::path_of(dir, base))?);
    let mut buf = Vec::new();
    while let Ok(Some(at)) = read_raw(&mut r, &mut buf)? {
        if at == offset {
            return Ok(Some(raw_crc(&buf)));
        }
        if at > offset {
            break;
        }
    }
    Ok(None)
}

/// The checksums of the records at `offsets` the log holds (durable ones only), in one pass
/// from the segment that holds the smallest.
pub fn crcs_at(dir: &Path, offsets: &std::collections::BTreeSet<i64>) -> io::Result<BTreeMap<i64, u32>> {
    let mut out = BTreeMap::new();
    let (Some(&lo), Some(&hi)) = (offsets.first(), offsets.last()) else { return Ok(out) };
    let head = durable_head(dir)?;
    let bases = segment::list(dir)?;
    let start = bases.iter().rposition(|&b| b <= lo).unwrap_or(0);
    let mut buf = Vec::new();
    for &base in &bases[start..] {
        if base > hi || base >= head {
            break;
        }
        let file = match fs::File::open(segment::path_of(dir, base)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut r = BufReader::with_capacity(1 << 20, file);
        while let Ok(Some(at)) = read_raw(&mut r, &mut buf)? {
            if at >= head || at > hi {
                break;
            }
            if offsets.contains(&at) {
                out.insert(at, raw_crc(&buf));
            }
        }
    }
    Ok(out)
}

/// The last durable record before `offset`: its offset and checksum.
pub fn last_before(dir: &Path, offset: i64) -> io::Result<Option<(i64, u32)>> {
    let bases = segment::list(dir)?;
    for &base in bases.iter().rev().filter(|&&b| b < offset) {
        let file = match fs::File::open(segment::path_of(dir, base)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::new();
        let mut last = None;
        while let Ok(Some(at)) = read_raw(&mut r, &mut buf)? {
            if at >= offset {
                break;
            }
            last = Some((at, raw_crc(&buf)));
        }
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

/// Every consumer group's committed position (the next offset it reads), by name.
pub fn groups(dir: &Path) -> io::Result<BTreeMap<String, i64>> {
    Ok(groups::all(&dir.join("groups"))?.into_iter().map(|(name, c)| (name, c.next)).collect())
}

/// Sets `group`'s position to `next`, durably, as a commit would (but also backwards: a
/// restore or a rebuild decides where the group resumes).
pub fn set_group(dir: &Path, group: &str, next: i64) -> io::Result<()> {
    let groups = dir.join("groups");
    fs::create_dir_all(&groups)?;
    groups::put(&groups, group, next, chrono::Utc::now().timestamp_millis())
}

/// Forgets `group`'s position. Whether it had one.
pub fn delete_group(dir: &Path, group: &str) -> io::Result<bool> {
    groups::delete(&dir.join("groups"), group)
}

/// Publishes `next` as the durable head of a log written by other means (a restore), so that
/// readers in other processes read it all and a writer starts there.
pub fn publish_head(dir: &Path, next: i64) -> io::Result<()> {
    head::write(dir, next)
}
