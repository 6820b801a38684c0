//! Packs of files (objects, secrets): `u16 path length | path | u64 size | i64 mtime ns |
//! u32 mode | bytes`, back to back; and the index of the objects a backup holds (one JSON line
//! per object: path, size, mtime, SHA-256).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;

use super::crypto::KeyRing;
use super::dest::Dest;
use super::stored::{FileReader, Opened};
use super::OBJECTS_INDEX;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Indexed {
    /// Path under `objects/`.
    pub p: String,
    /// Size.
    pub s: u64,
    /// Modification time, ns since the epoch.
    pub m: i64,
    /// SHA-256 of the content.
    pub h: String,
}

pub(super) fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64)
}

pub(super) fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, fs::Metadata)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let path = entry.path();
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
            out.push((rel, meta));
        }
    }
    Ok(())
}

pub(super) fn pack_entry(out: &mut dyn Write, rel: &str, data: &[u8], mtime: i64, mode: u32) -> io::Result<()> {
    let p = rel.as_bytes();
    out.write_all(&(p.len() as u16).to_le_bytes())?;
    out.write_all(p)?;
    out.write_all(&(data.len() as u64).to_le_bytes())?;
    out.write_all(&mtime.to_le_bytes())?;
    out.write_all(&mode.to_le_bytes())?;
    out.write_all(data)
}

/// Unpacks a pack under `root`, calling `check(path, content, mtime_ns)` for each file
/// before writing: an error stops, `false` skips the file. Returns how many were written.
pub(super) fn unpack(
    r: &mut impl Read,
    root: &Path,
    mut check: impl FnMut(&str, &[u8], i64) -> anyhow::Result<bool>,
) -> anyhow::Result<u64> {
    let mut n = 0;
    loop {
        let mut len = [0u8; 2];
        match r.read(&mut len[..1])? {
            0 => return Ok(n),
            _ => r.read_exact(&mut len[1..])?,
        }
        let mut path = vec![0; u16::from_le_bytes(len) as usize];
        r.read_exact(&mut path)?;
        let path = String::from_utf8(path).context("a path in a pack is not UTF-8")?;
        anyhow::ensure!(
            !path.split('/').any(|c| c == ".." || c.is_empty()) && !path.starts_with('/'),
            "a pack holds a path outside its root: {path:?}"
        );
        let mut fixed = [0u8; 20];
        r.read_exact(&mut fixed)?;
        let size = u64::from_le_bytes(fixed[0..8].try_into().expect("8"));
        let mtime = i64::from_le_bytes(fixed[8..16].try_into().expect("8"));
        let mode = u32::from_le_bytes(fixed[16..20].try_into().expect("4"));
        let mut data = vec![0; size as usize];
        r.read_exact(&mut data)?;
        if !check(&path, &data, mtime)? {
            continue;
        }
        let target = root.join(&path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&target)?;
        f.write_all(&data)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.set_modified(UNIX_EPOCH + Duration::from_nanos(mtime.max(0) as u64))?;
        n += 1;
    }
}

/// The objects index of every backup of a chain: path → (size, mtime).
pub(super) fn known_objects(
    dest: &dyn Dest,
    chain: &[Opened],
    key: Option<&KeyRing>,
) -> anyhow::Result<HashMap<String, (u64, i64)>> {
    let mut known = HashMap::new();
    for m in chain {
        for o in read_index(dest, m, key)? {
            known.insert(o.p, (o.s, o.m));
        }
    }
    Ok(known)
}

pub(super) fn read_index(dest: &dyn Dest, m: &Opened, key: Option<&KeyRing>) -> anyhow::Result<Vec<Indexed>> {
    let Some(entry) = m.file(OBJECTS_INDEX) else { return Ok(Vec::new()) };
    let mut r = FileReader::open(dest, m, entry, key)?;
    let mut text = String::new();
    r.read_to_string(&mut text)?;
    r.finish()?;
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}/{OBJECTS_INDEX}: damaged line", m.id)))
        .collect()
}
