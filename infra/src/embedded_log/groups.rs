//! Consumer group positions: one small file per group under `groups/`, replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the directory), so a
//! commit is durable when it returns and a crash leaves the old position or the new one.
//!
//! File names are the group name in hex (any group name is a safe file name); the content is
//! `next committed_ms` in ASCII.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::segment::sync_dir;

/// A group's committed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Committed {
    /// The next offset the group reads.
    pub next: i64,
    /// When it committed (epoch ms).
    pub committed_ms: i64,
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

fn path_of(dir: &Path, group: &str) -> PathBuf {
    dir.join(hex(group))
}

fn parse(text: &str) -> Option<Committed> {
    let mut parts = text.split_ascii_whitespace();
    let next = parts.next()?.parse().ok()?;
    let committed_ms = parts.next()?.parse().ok()?;
    Some(Committed { next, committed_ms })
}

/// The group's position, if it committed.
pub(super) fn read(dir: &Path, group: &str) -> io::Result<Option<Committed>> {
    match fs::read_to_string(path_of(dir, group)) {
        Ok(text) => parse(&text)
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("group file of {group:?} is damaged"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Commits `next` for `group` (positions only move forward).
pub(super) fn write(dir: &Path, group: &str, next: i64, now_ms: i64) -> io::Result<()> {
    let next = read(dir, group)?.map_or(next, |c| c.next.max(next));
    put(dir, group, next, now_ms)
}

/// Sets `group`'s position to `next`, forward or back, in one atomic replace.
pub(super) fn put(dir: &Path, group: &str, next: i64, now_ms: i64) -> io::Result<()> {
    let path = path_of(dir, group);
    let tmp = dir.join(format!(".{}.tmp", hex(group)));
    {
        let mut f = fs::File::create(&tmp)?;
        write!(f, "{next} {now_ms}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    sync_dir(dir)
}

/// Every group's position, by name.
pub(super) fn all(dir: &Path) -> io::Result<Vec<(String, Committed)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(unhex) else { continue };
        if let Some(c) = read(dir, &name)? {
            out.push((name, c));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Forgets a group. Whether it existed.
pub(super) fn delete(dir: &Path, group: &str) -> io::Result<bool> {
    match fs::remove_file(path_of(dir, group)) {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_move_forward_and_names_survive() {
        let dir = tempfile::tempdir().unwrap();
        let name = "daybook-projector/ü 1";
        assert_eq!(read(dir.path(), name).unwrap(), None);
        write(dir.path(), name, 10, 5).unwrap();
        write(dir.path(), name, 4, 6).unwrap();
        assert_eq!(read(dir.path(), name).unwrap(), Some(Committed { next: 10, committed_ms: 6 }));
        write(dir.path(), "b", 1, 7).unwrap();
        let names: Vec<_> = all(dir.path()).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", name]);
        assert!(delete(dir.path(), "b").unwrap());
        assert!(!delete(dir.path(), "b").unwrap());
    }
}
