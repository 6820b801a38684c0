//! Backups of an embedded data directory, built on the log's own positions.
//!
//! A **full** backup holds the log's records (the frames of every segment, up to the last
//! frame that checks), the consumer-group positions, a consistent snapshot of `store.db`
//! (SQLite's online backup API, taken *after* the group positions: a restored projector
//! resumes at or before what the store holds, and replays are idempotent), every object under
//! `objects/`, and the secrets files. An **incremental** holds the log records from its
//! parent's end to now, the objects added or changed since (by path, size and mtime against
//! the chain's indexes), and the group positions and secrets again — not the store: the store
//! is a function of the log, so restoring at an incremental takes the full's store and group
//! positions plus the log up to the incremental, and the projector replays the tail at the
//! next `run` (or `daybook rebuild`). Copying the store each time would make every
//! incremental as large as a full.
//!
//! The backup is a separate reader of the data directory: it never stops or pauses `run`. It
//! cannot see the writer's in-memory durable head, so it copies every frame that checks; a
//! frame that checks but was not yet fsynced is harmless (reports are idempotent).
//!
//! Files are zstd-compressed and, with a key, sealed (see [`crypto`]); the manifest lists
//! each with its size, stored size and SHA-256 of the stored bytes (see [`manifest`]).

pub mod crypto;
mod dest;
pub mod manifest;
pub mod rebuild;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

pub use crypto::Key;
use dest::Dest;
pub use dest::S3Options;
pub use manifest::{Counts, FileEntry, Kind, LogRange, Manifest};
use manifest::{FORMAT, MANIFEST};

/// The secrets files of a data directory (see `secrets.rs`).
pub const SECRETS: [&str; 4] =
    ["token-secret", crate::secrets::KEYS_FILE, crate::secrets::REVOKED_FILE, "s3-credentials"];

const STORE_FILE: &str = "store.db.zst";
/// Objects go into packs `objects-0001.pack.zst`, … of about this many plain bytes each
/// (under S3's 5 GiB limit on one PUT, and a unit a failed upload repeats).
const OBJECTS_PACK_BYTES: u64 = if cfg!(test) { 64 << 10 } else { 1 << 30 };

fn objects_pack(n: usize) -> String {
    format!("objects-{n:04}.pack.zst")
}

fn is_objects_pack(name: &str) -> bool {
    name.starts_with("objects-") && name.ends_with(".pack.zst")
}
const OBJECTS_INDEX: &str = "objects.idx.zst";
const SECRETS_FILE: &str = "secrets.pack.zst";
const ZSTD_LEVEL: i32 = 3;

/// What `daybook backup` does.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub data_dir: PathBuf,
    /// A directory or `s3://BUCKET/PREFIX`.
    pub to: String,
    /// A full backup even when DEST already holds one.
    pub full: bool,
    pub key: Option<Key>,
    /// Keep this many full backups (with their incrementals); delete older ones.
    pub keep_full: Option<usize>,
    pub s3: S3Options,
}

// ---------------------------------------------------------------------------------------------
// Stored files: producer → count → zstd → [seal] → SHA-256 → file.

struct HashWriter<W: Write> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hash.update(&data[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum MaybeSealed<W: Write> {
    Plain(W),
    Sealed(crypto::Sealer<W>),
}

impl<W: Write> Write for MaybeSealed<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(data),
            Self::Sealed(w) => w.write(data),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Sealed(w) => w.flush(),
        }
    }
}

impl<W: Write> MaybeSealed<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Sealed(w) => w.finish(),
        }
    }
}

/// Counts the plain bytes written.
struct Counted<W: Write> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes file `name` of backup `id` into `stage` through `produce`.
fn write_file(
    stage: &Path,
    id: &str,
    name: &str,
    key: Option<&Key>,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<FileEntry> {
    let file = BufWriter::with_capacity(1 << 20, fs::File::create(stage.join(name))?);
    let hashed = HashWriter { inner: file, hash: Sha256::new(), n: 0 };
    let sealed = match key {
        Some(k) => MaybeSealed::Sealed(crypto::Sealer::new(hashed, k, &format!("{id}/{name}"))?),
        None => MaybeSealed::Plain(hashed),
    };
    let mut encoder = zstd::Encoder::new(sealed, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let mut counted = Counted { inner: encoder, n: 0 };
    produce(&mut counted)?;
    let size = counted.n;
    let hashed = counted.inner.finish()?.finish()?;
    let HashWriter { inner, hash, n } = hashed;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(FileEntry { name: name.to_owned(), size, stored_size: n, sha256: hex(&hash.finalize()), log: None })
}

#[derive(Default)]
struct HashState {
    hash: Sha256,
    n: u64,
}

struct HashReader {
    inner: Box<dyn Read + Send>,
    state: Arc<Mutex<HashState>>,
}

impl Read for HashReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let mut s = self.state.lock().expect("hash lock");
        s.hash.update(&out[..n]);
        s.n += n as u64;
        Ok(n)
    }
}

enum Source {
    Plain(HashReader),
    Sealed(crypto::Opener<HashReader>),
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(r) => r.read(out),
            Self::Sealed(r) => r.read(out),
        }
    }
}

/// Reads one stored file back; [`finish`](Self::finish) checks its size and SHA-256.
struct FileReader {
    what: String,
    decoder: Option<zstd::Decoder<'static, BufReader<Source>>>,
    state: Arc<Mutex<HashState>>,
    entry: FileEntry,
    plain: u64,
}

fn damaged(what: &str, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {why}"))
}

impl FileReader {
    fn open(dest: &dyn Dest, m: &Manifest, entry: &FileEntry, key: Option<&Key>) -> io::Result<Self> {
        let what = format!("{}/{}", m.id, entry.name);
        let raw = dest.open(&m.id, &entry.name).map_err(|e| damaged(&what, e))?;
        let state = Arc::new(Mutex::new(HashState::default()));
        let hashed = HashReader { inner: raw, state: state.clone() };
        let source = match (m.encrypted, key) {
            (false, _) => Source::Plain(hashed),
            (true, Some(k)) => Source::Sealed(crypto::Opener::new(hashed, k, &what)?),
            (true, None) => {
                return Err(damaged(&what, "the backup is encrypted: give --encryption-key-file"));
            }
        };
        let mut decoder = zstd::Decoder::new(source)?;
        decoder = decoder.single_frame();
        Ok(Self { what, decoder: Some(decoder), state, entry: entry.clone(), plain: 0 })
    }

    /// Reads to the end and checks everything: nothing after the compressed frame, the plain
    /// size, the stored size and SHA-256.
    fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        let decoder = self.decoder.take().expect("not finished");
        let mut rest = Vec::new();
        decoder.finish().read_to_end(&mut rest).map_err(|e| self.fail(e))?;
        let s = self.state.lock().expect("hash lock");
        let sha = hex(&s.hash.clone().finalize());
        if sha != self.entry.sha256 || s.n != self.entry.stored_size {
            return Err(damaged(
                &self.what,
                format!(
                    "stored bytes do not match the manifest ({} bytes, sha256 {sha}; the manifest says {} bytes, {})",
                    s.n, self.entry.stored_size, self.entry.sha256
                ),
            ));
        }
        if !rest.is_empty() || self.plain != self.entry.size {
            return Err(damaged(&self.what, format!("{} bytes, the manifest says {}", self.plain, self.entry.size)));
        }
        Ok(())
    }

    fn fail(&self, e: io::Error) -> io::Error {
        let text = e.to_string();
        if text.contains(&self.what) {
            e
        } else {
            damaged(&self.what, text)
        }
    }
}

impl Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let r = self.decoder.as_mut().expect("not finished").read(out);
        match r {
            Ok(n) => {
                self.plain += n as u64;
                Ok(n)
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests and chains.

/// Reads (and, when sealed, opens) the manifest of backup `id`.
fn read_manifest(dest: &dyn Dest, id: &str, key: Option<&Key>) -> anyhow::Result<Manifest> {
    let what = format!("{id}/{MANIFEST}");
    let bytes = dest.get_bytes(id, MANIFEST).with_context(|| format!("{what}: cannot read"))?;
    let bytes = if bytes.starts_with(crypto::MAGIC) {
        let Some(key) = key else { bail!("{what}: backup {id} is encrypted: give --encryption-key-file") };
        crypto::open_bytes(key, &what, &bytes)?
    } else {
        bytes
    };
    let m: Manifest = serde_json::from_slice(&bytes).with_context(|| format!("{what}: not a manifest"))?;
    anyhow::ensure!(m.format == FORMAT, "{what}: format {} (this daybook reads format {FORMAT})", m.format);
    anyhow::ensure!(m.id == id, "{what}: names backup {}, not {id}", m.id);
    Ok(m)
}

/// The backups `id` depends on, its full first, `id` last.
fn chain(dest: &dyn Dest, ids: &[String], id: &str, key: Option<&Key>) -> anyhow::Result<Vec<Manifest>> {
    let mut out = vec![read_manifest(dest, id, key)?];
    while let Some(parent) = out.last().expect("one").parent.clone() {
        let child = &out.last().expect("one").id;
        anyhow::ensure!(
            ids.contains(&parent),
            "backup {child}: its parent {parent} is missing from {} (restore an earlier backup, or take a --full one)",
            dest.describe()
        );
        let m = read_manifest(dest, &parent, key)?;
        anyhow::ensure!(
            m.log.next == out.last().expect("one").log.first,
            "backup {child} does not continue {parent}'s log"
        );
        out.push(m);
        anyhow::ensure!(out.len() < 100_000, "backup {id}: its chain loops");
    }
    out.reverse();
    anyhow::ensure!(out[0].kind == Kind::Full, "backup {}: the start of the chain is not a full backup", out[0].id);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The log: segment files named by base offset holding frames
// `u32 body length | u32 CRC-32C of body | body (u64 offset | …)` (infra/src/embedded_log/segment.rs).

const FRAME_HEADER: usize = 8;
const FRAME_FIXED: usize = 22;
const MAX_BODY: usize = 64 << 20;

fn segment_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(base) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|b| b.parse::<i64>().ok()) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// The next frame of `r` into `buf` (header and body) and its offset; `Err(why)` when there
/// is no whole frame that checks at this point (`why` empty: clean end of the file).
fn next_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Result<i64, String>> {
    buf.clear();
    buf.resize(FRAME_HEADER, 0);
    let got = read_full(r, &mut buf[..])?;
    if got == 0 {
        return Ok(Err(String::new()));
    }
    if got < FRAME_HEADER {
        return Ok(Err("a torn frame header".into()));
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4")) as usize;
    if !(FRAME_FIXED..=MAX_BODY).contains(&len) {
        return Ok(Err(format!("an impossible frame length {len}")));
    }
    buf.resize(FRAME_HEADER + len, 0);
    if read_full(r, &mut buf[FRAME_HEADER..])? < len {
        return Ok(Err("a torn frame".into()));
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4"));
    if crc32c::crc32c(&buf[FRAME_HEADER..]) != crc {
        return Ok(Err("a frame that fails its checksum".into()));
    }
    Ok(Ok(i64::from_le_bytes(buf[8..16].try_into().expect("8"))))
}

fn read_full(r: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
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

/// The first offset of the log (`None`: no records).
fn oldest_offset(dir: &Path) -> io::Result<Option<i64>> {
    for base in segment_bases(dir)? {
        let mut r = match fs::File::open(segment_path(dir, base)) {
            Ok(f) => BufReader::new(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Ok(offset) = next_frame(&mut r, &mut Vec::new())? {
            return Ok(Some(offset));
        }
    }
    Ok(None)
}

/// Copies the records from offset `from` on into log pieces, one per segment; returns the
/// pieces and the range copied (`first == next` when there was nothing new).
fn copy_log(
    log_dir: &Path,
    from: i64,
    stage: &Path,
    id: &str,
    key: Option<&Key>,
    dest: &dyn Dest,
) -> anyhow::Result<(Vec<FileEntry>, LogRange, Option<u32>)> {
    let bases = segment_bases(log_dir).with_context(|| format!("cannot list {}", log_dir.display()))?;
    let mut pieces = Vec::new();
    let mut next = from;
    let mut first = None;
    let mut last_crc = None;
    let mut buf = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let newest = i + 1 == bases.len();
        if bases.get(i + 1).is_some_and(|&after| after <= from) {
            continue;
        }
        let path = segment_path(log_dir, base);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            // Retention deleted it since the listing: only possible before the first record kept.
            Err(e) if e.kind() == io::ErrorKind::NotFound && first.is_none() => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut reader = BufReader::with_capacity(1 << 20, file);
        // Skip the frames before `from`, and find the offset of the first one copied.
        let (start, mut pending) = loop {
            match next_frame(&mut reader, &mut buf)? {
                Ok(offset) if offset < from => continue,
                Ok(offset) => break (offset, true),
                Err(why) if why.is_empty() || newest => break (next, false),
                Err(why) => bail!("{}: {why} before offset {from}", path.display()),
            }
        };
        if !pending {
            continue;
        }
        anyhow::ensure!(
            first.is_none() || start == next,
            "{}: starts at offset {start}, but the segment before it ends at {next}",
            path.display()
        );
        first.get_or_insert(start);
        let name = format!("log-{start:020}.seg.zst");
        let mut records = 0u64;
        let mut failure = None;
        let mut entry = write_file(stage, id, &name, key, |out| {
            let mut expect = start;
            loop {
                if pending {
                    let offset = i64::from_le_bytes(buf[8..16].try_into().expect("8"));
                    if offset != expect {
                        failure = Some(format!("{}: offset {offset} follows {}", path.display(), expect - 1));
                        return Ok(());
                    }
                    out.write_all(&buf)?;
                    last_crc = Some(u32::from_le_bytes(buf[4..8].try_into().expect("4")));
                    records += 1;
                    expect += 1;
                }
                match next_frame(&mut reader, &mut buf)? {
                    Ok(_) => pending = true,
                    // The end of what checks: the newest segment may end in a frame still
                    // being written; a closed one must end cleanly.
                    Err(why) if why.is_empty() || newest => return Ok(()),
                    Err(why) => {
                        failure = Some(format!("{}: {why} after offset {}", path.display(), expect - 1));
                        return Ok(());
                    }
                }
            }
        })?;
        if let Some(f) = failure {
            bail!("the log is damaged: {f}");
        }
        next = start + records as i64;
        entry.log = Some(LogRange { first: start, next });
        dest.put(id, &name).with_context(|| format!("cannot store {id}/{name} in {}", dest.describe()))?;
        pieces.push(entry);
    }
    Ok((pieces, LogRange { first: first.unwrap_or(next), next }, last_crc))
}

/// The CRC-32C of the record at `offset`, if the log holds it.
fn crc_at(dir: &Path, offset: i64) -> io::Result<Option<u32>> {
    let bases = segment_bases(dir)?;
    let Some(&base) = bases.iter().rev().find(|&&b| b <= offset) else { return Ok(None) };
    let mut r = BufReader::with_capacity(1 << 20, fs::File::open(segment_path(dir, base))?);
    let mut buf = Vec::new();
    while let Ok(at) = next_frame(&mut r, &mut buf)? {
        if at == offset {
            return Ok(Some(u32::from_le_bytes(buf[4..8].try_into().expect("4"))));
        }
        if at > offset {
            break;
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Group positions: `log/groups/<name in hex>` holding `next committed_ms`
// (infra/src/embedded_log/groups.rs).

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

fn read_groups(log_dir: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    let dir = log_dir.join("groups");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(unhex) else { continue };
        let text = match fs::read_to_string(entry.path()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let next = text.split_ascii_whitespace().next().and_then(|n| n.parse::<i64>().ok());
        let next = next.with_context(|| format!("{}: damaged group file", entry.path().display()))?;
        out.insert(name, next);
    }
    Ok(out)
}

pub(crate) fn write_group(log_dir: &Path, group: &str, next: i64) -> io::Result<()> {
    let dir = log_dir.join("groups");
    fs::create_dir_all(&dir)?;
    let name: String = group.bytes().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        write!(f, "{next} {}", chrono::Utc::now().timestamp_millis())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(&name))?;
    fs::File::open(&dir)?.sync_all()
}

pub(crate) fn delete_group(log_dir: &Path, group: &str) -> io::Result<()> {
    let name: String = group.bytes().map(|b| format!("{b:02x}")).collect();
    match fs::remove_file(log_dir.join("groups").join(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Packs of files (objects, secrets): `u16 path length | path | u64 size | i64 mtime ns |
// u32 mode | bytes`, back to back; and the index of the objects a backup holds.

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Indexed {
    /// Path under `objects/`.
    p: String,
    /// Size.
    s: u64,
    /// Modification time, ns since the epoch.
    m: i64,
    /// SHA-256 of the content.
    h: String,
}

fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, fs::Metadata)>) -> io::Result<()> {
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

fn pack_entry(out: &mut dyn Write, rel: &str, data: &[u8], mtime: i64, mode: u32) -> io::Result<()> {
    let p = rel.as_bytes();
    out.write_all(&(p.len() as u16).to_le_bytes())?;
    out.write_all(p)?;
    out.write_all(&(data.len() as u64).to_le_bytes())?;
    out.write_all(&mtime.to_le_bytes())?;
    out.write_all(&mode.to_le_bytes())?;
    out.write_all(data)
}

/// Unpacks a pack under `root`, calling `check(path, content)` for each file before writing.
fn unpack(
    r: &mut impl Read,
    root: &Path,
    mut check: impl FnMut(&str, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut n = 0;
    loop {
        let mut len = [0u8; 2];
        if read_full(r, &mut len)? == 0 {
            return Ok(n);
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
        check(&path, &data)?;
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
fn known_objects(
    dest: &dyn Dest,
    chain: &[Manifest],
    key: Option<&Key>,
) -> anyhow::Result<HashMap<String, (u64, i64)>> {
    let mut known = HashMap::new();
    for m in chain {
        for o in read_index(dest, m, key)? {
            known.insert(o.p, (o.s, o.m));
        }
    }
    Ok(known)
}

fn read_index(dest: &dyn Dest, m: &Manifest, key: Option<&Key>) -> anyhow::Result<Vec<Indexed>> {
    let Some(entry) = m.file(OBJECTS_INDEX) else { return Ok(Vec::new()) };
    let mut r = FileReader::open(dest, m, entry, key)?;
    let mut text = String::new();
    r.read_to_string(&mut text)?;
    r.finish()?;
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}/{OBJECTS_INDEX}: damaged line", m.id)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Backup.

/// Takes one backup of `opts.data_dir` into `opts.to`: full when asked, when DEST holds none,
/// or when the newest one cannot be continued; else incremental. Returns its manifest.
pub fn backup(opts: &BackupOptions) -> anyhow::Result<Manifest> {
    backup_with(opts, None)
}

/// As [`backup`]; also full when the chain's full backup is older than `full_after`.
pub fn backup_with(opts: &BackupOptions, full_after: Option<Duration>) -> anyhow::Result<Manifest> {
    let started = Instant::now();
    let data = &opts.data_dir;
    let log_dir = data.join("log");
    anyhow::ensure!(
        log_dir.is_dir(),
        "no embedded log at {} (a deployment on Kafka and ScyllaDB is backed up with their own tools: infra/README.md)",
        log_dir.display()
    );
    let dest = dest::open(&opts.to, &opts.s3, true)?;
    let key = opts.key.as_ref();
    let ids = dest.ids().with_context(|| format!("cannot list {}", dest.describe()))?;

    // The parent: the newest complete backup, if its chain is whole and the log still holds
    // every record after it.
    let mut parent_chain = None;
    if let (false, Some(last)) = (opts.full, ids.last()) {
        match chain(dest.as_ref(), &ids, last, key) {
            Ok(c) => parent_chain = Some(c),
            Err(e) if e.to_string().contains("encrypted") || e.to_string().contains("wrong key") => return Err(e),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the newest backup cannot be continued; taking a full backup")
            }
        }
    }
    if let (Some(c), Some(after)) = (&parent_chain, full_after) {
        let created = chrono::DateTime::parse_from_rfc3339(&c[0].created_at).map(|t| t.with_timezone(&chrono::Utc));
        let age = created.map(|t| chrono::Utc::now() - t).unwrap_or_default();
        if age.to_std().unwrap_or_default() >= after {
            parent_chain = None;
        }
    }
    if let Some(c) = &parent_chain {
        let last = c.last().expect("one");
        if let Some(crc) = last.last_frame_crc {
            if crc_at(&log_dir, last.log.next - 1)? != Some(crc) {
                tracing::warn!(backup = %last.id, "the newest backup is not of this log (another data directory, or one restored from an older backup); taking a full backup");
                parent_chain = None;
            }
        }
    }
    if let Some(c) = &parent_chain {
        let from = c.last().expect("one").log.next;
        let oldest = oldest_offset(&log_dir)?;
        if oldest.is_some_and(|o| o > from) {
            tracing::warn!(
                from,
                oldest,
                "the log no longer holds the records after the newest backup; taking a full backup"
            );
            parent_chain = None;
        }
    }

    let mut id = manifest::new_id(chrono::Utc::now());
    while ids.contains(&id) || ids.last().is_some_and(|l| *l >= id) {
        std::thread::sleep(Duration::from_millis(2));
        id = manifest::new_id(chrono::Utc::now());
    }
    let stage = dest.stage(&id).with_context(|| format!("cannot write into {}", dest.describe()))?;
    let result = take(opts, dest.as_ref(), &id, &stage, parent_chain.as_deref(), started);
    let m = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = dest.delete(&id);
            return Err(e);
        }
    };
    if let Some(keep) = opts.keep_full {
        prune(dest.as_ref(), keep.max(1), key, &m.id)?;
    }
    Ok(m)
}

fn take(
    opts: &BackupOptions,
    dest: &dyn Dest,
    id: &str,
    stage: &Path,
    parent: Option<&[Manifest]>,
    started: Instant,
) -> anyhow::Result<Manifest> {
    let data = &opts.data_dir;
    let log_dir = data.join("log");
    let key = opts.key.as_ref();
    let kind = if parent.is_some() { Kind::Incremental } else { Kind::Full };
    let mut files = Vec::new();
    let mut counts = Counts::default();
    let put =
        |name: &str| dest.put(id, name).with_context(|| format!("cannot store {id}/{name} in {}", dest.describe()));

    // 1. Group positions, before the store snapshot: the store holds at least what they say.
    let groups = read_groups(&log_dir)?;

    // 2. The store (full only), with SQLite's online backup API: one step, one read
    //    transaction — a consistent snapshot that does not block the writer (WAL).
    let store = data.join("store.db");
    if kind == Kind::Full && store.exists() {
        let snapshot = stage.join("store.db.snapshot");
        {
            let src = rusqlite::Connection::open_with_flags(&store, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            src.busy_timeout(Duration::from_secs(30))?;
            let mut dst = rusqlite::Connection::open(&snapshot)?;
            let copy = rusqlite::backup::Backup::new(&src, &mut dst)?;
            loop {
                match copy.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        {
            let snap = rusqlite::Connection::open(&snapshot)?;
            let tables: Vec<String> = snap
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for t in tables {
                let n: i64 = snap.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))?;
                counts.store_rows.insert(t, n as u64);
            }
        }
        let mut src = fs::File::open(&snapshot)?;
        files.push(write_file(stage, id, STORE_FILE, key, |out| io::copy(&mut src, out).map(drop))?);
        fs::remove_file(&snapshot)?;
        put(STORE_FILE)?;
    }

    // 3. The log, after the groups and the store: it ends at or after both.
    let from = match parent {
        Some(c) => c.last().expect("one").log.next,
        None => 0,
    };
    let (pieces, log, last_crc) = copy_log(&log_dir, from, stage, id, key, dest)?;
    let last_frame_crc = last_crc.or_else(|| parent.and_then(|c| c.last().expect("one").last_frame_crc));
    counts.records = (log.next - log.first) as u64;
    files.extend(pieces);
    let log = if parent.is_none() && log.first == log.next {
        // An empty log: record where it stands, so incrementals continue from there.
        LogRange { first: log.first.max(1), next: log.next.max(1) }
    } else {
        log
    };

    // 4. Objects new or changed since the chain's backups.
    let known = match parent {
        Some(c) => known_objects(dest, c, key)?,
        None => HashMap::new(),
    };
    let root = data.join("objects");
    let mut all = Vec::new();
    walk(&root, &root, &mut all)?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let changed: Vec<_> =
        all.into_iter().filter(|(rel, meta)| known.get(rel) != Some(&(meta.len(), mtime_ns(meta)))).collect();
    if !changed.is_empty() {
        let mut index = Vec::new();
        let mut pending = changed.iter().peekable();
        let mut pack = 0;
        while pending.peek().is_some() {
            pack += 1;
            let name = objects_pack(pack);
            files.push(write_file(stage, id, &name, key, |out| {
                let mut bytes = 0u64;
                while bytes < OBJECTS_PACK_BYTES {
                    let Some((rel, meta)) = pending.next() else { break };
                    let data = match fs::read(root.join(rel)) {
                        Ok(d) => d,
                        // Expired or replaced since the listing.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    let m = mtime_ns(meta);
                    pack_entry(out, rel, &data, m, 0o644)?;
                    bytes += data.len() as u64;
                    index.push(Indexed { p: rel.clone(), s: data.len() as u64, m, h: hex(&Sha256::digest(&data)) });
                }
                Ok(())
            })?);
            put(&name)?;
        }
        counts.objects = index.len() as u64;
        counts.object_bytes = index.iter().map(|o| o.s).sum();
        files.push(write_file(stage, id, OBJECTS_INDEX, key, |out| {
            for o in &index {
                serde_json::to_writer(&mut *out, o)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })?);
        put(OBJECTS_INDEX)?;
    }

    // 5. The secrets.
    files.push(write_file(stage, id, SECRETS_FILE, key, |out| {
        for name in SECRETS {
            match fs::read(data.join(name)) {
                Ok(bytes) => pack_entry(out, name, &bytes, mtime_ns(&fs::metadata(data.join(name))?), 0o600)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })?);
    put(SECRETS_FILE)?;

    let m = Manifest {
        format: FORMAT,
        id: id.to_owned(),
        kind,
        parent: parent.map(|c| c.last().expect("one").id.clone()),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        daybook_version: env!("CARGO_PKG_VERSION").to_owned(),
        encrypted: key.is_some(),
        log,
        last_frame_crc,
        groups,
        files,
        counts,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&m)?;
    let bytes = match key {
        Some(k) => crypto::seal_bytes(k, &format!("{id}/{MANIFEST}"), &json)?,
        None => json,
    };
    dest.commit(id, &bytes).with_context(|| format!("cannot complete {id} in {}", dest.describe()))?;
    Ok(m)
}

/// Keeps the `keep` newest full backups and the incrementals after them; deletes the rest
/// (and incomplete backups older than `current`).
fn prune(dest: &dyn Dest, keep: usize, key: Option<&Key>, current: &str) -> anyhow::Result<()> {
    let ids = dest.ids()?;
    let mut fulls = Vec::new();
    for id in &ids {
        if read_manifest(dest, id, key)?.kind == Kind::Full {
            fulls.push(id.clone());
        }
    }
    if fulls.len() > keep {
        let oldest_kept = &fulls[fulls.len() - keep];
        for id in ids.iter().filter(|id| *id < oldest_kept) {
            dest.delete(id).with_context(|| format!("cannot delete backup {id}"))?;
            tracing::info!(backup = %id, "deleted (--keep-full)");
        }
    }
    for id in dest.incomplete()?.iter().filter(|id| id.as_str() < current) {
        let _ = dest.delete(id);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// List, restore, verify.

/// One line of `daybook backup list`.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The complete backups in `to`, oldest first, and those left incomplete.
pub fn list(to: &str, key: Option<&Key>, s3: &S3Options) -> anyhow::Result<Vec<Listed>> {
    let dest = dest::open(to, s3, false)?;
    let mut out = Vec::new();
    for id in dest.ids()? {
        let listed = match read_manifest(dest.as_ref(), &id, key) {
            Ok(m) => Listed {
                id,
                kind: Some(m.kind),
                parent: m.parent.clone(),
                encrypted: m.encrypted,
                created_at: Some(m.created_at.clone()),
                log: Some(m.log),
                records: Some(m.counts.records),
                objects: Some(m.counts.objects),
                stored_bytes: Some(m.stored_bytes()),
                problem: None,
            },
            Err(e) => Listed {
                encrypted: format!("{e:#}").contains("encrypted") || format!("{e:#}").contains("wrong key"),
                id,
                kind: None,
                parent: None,
                created_at: None,
                log: None,
                records: None,
                objects: None,
                stored_bytes: None,
                problem: Some(format!("{e:#}")),
            },
        };
        out.push(listed);
    }
    for id in dest.incomplete()? {
        out.push(Listed {
            id,
            kind: None,
            parent: None,
            encrypted: false,
            created_at: None,
            log: None,
            records: None,
            objects: None,
            stored_bytes: None,
            problem: Some("incomplete (no manifest): never used, deleted by the next backup with --keep-full".into()),
        });
    }
    Ok(out)
}

/// What `daybook restore` does.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub from: String,
    /// The backup to restore (default: the newest).
    pub at: Option<String>,
    pub data_dir: PathBuf,
    /// Restore into a directory that is not empty (what the backup holds is replaced).
    pub force: bool,
    pub key: Option<Key>,
    pub s3: S3Options,
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Restored {
    pub id: String,
    pub chain: Vec<String>,
    pub log: LogRange,
    pub records: u64,
    pub objects: u64,
    pub groups: BTreeMap<String, i64>,
    pub store_rows: BTreeMap<String, u64>,
}

/// Restores backup `at` (and the chain it continues) into an empty data directory.
pub fn restore(opts: &RestoreOptions) -> anyhow::Result<Restored> {
    let dest = dest::open(&opts.from, &opts.s3, false)?;
    let ids = dest.ids()?;
    let at = match &opts.at {
        Some(id) => {
            anyhow::ensure!(ids.contains(id), "no complete backup {id} in {}", dest.describe());
            id.clone()
        }
        None => ids.last().cloned().with_context(|| format!("no complete backup in {}", dest.describe()))?,
    };
    let target = &opts.data_dir;
    let busy = fs::read_dir(target).map(|mut d| d.next().is_some()).unwrap_or(false);
    if busy {
        anyhow::ensure!(
            opts.force,
            "{} is not empty: restore into a new directory (or --force to replace its log, store, objects and secrets)",
            target.display()
        );
        for sub in ["log", "objects"] {
            match fs::remove_dir_all(target.join(sub)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        for f in ["store.db", "store.db-wal", "store.db-shm"].iter().chain(SECRETS.iter()) {
            let _ = fs::remove_file(target.join(f));
        }
    }
    restore_into(dest.as_ref(), &ids, &at, target, opts.key.as_ref()).with_context(|| {
        format!("restore of {at} into {} failed; that directory is incomplete, do not run on it", target.display())
    })
}

fn restore_into(
    dest: &dyn Dest,
    ids: &[String],
    at: &str,
    target: &Path,
    key: Option<&Key>,
) -> anyhow::Result<Restored> {
    let chain = chain(dest, ids, at, key)?;
    let full = &chain[0];
    let last = chain.last().expect("one");
    let log_dir = target.join("log");
    fs::create_dir_all(log_dir.join("groups"))?;
    let mut restored = Restored {
        id: at.to_owned(),
        chain: chain.iter().map(|m| m.id.clone()).collect(),
        log: LogRange { first: full.log.first, next: last.log.next },
        store_rows: full.counts.store_rows.clone(),
        ..Restored::default()
    };

    // The log: each piece is a segment named by its first offset.
    let mut expect = None;
    for m in &chain {
        for entry in m.files.iter().filter(|f| f.log.is_some()) {
            let range = entry.log.expect("filtered");
            anyhow::ensure!(
                expect.is_none_or(|e| e == range.first),
                "{}/{}: starts at {} instead of {:?}",
                m.id,
                entry.name,
                range.first,
                expect
            );
            let path = segment_path(&log_dir, range.first);
            let mut out = BufWriter::new(fs::File::create(&path)?);
            let mut r = FileReader::open(dest, m, entry, key)?;
            io::copy(&mut r, &mut out)?;
            r.finish()?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            restored.records += (range.next - range.first) as u64;
            expect = Some(range.next);
        }
    }
    if restored.records == 0 {
        // An empty log that had already handed out offsets: start the next one where it was.
        fs::File::create(segment_path(&log_dir, last.log.next.max(1)))?.sync_all()?;
    }
    // Group positions of the full (consistent with its store), never past the restored log.
    for (group, next) in &full.groups {
        let next = (*next).min(last.log.next);
        write_group(&log_dir, group, next)?;
        restored.groups.insert(group.clone(), next);
    }

    // The store of the full.
    if let Some(entry) = full.file(STORE_FILE) {
        let mut out = BufWriter::new(fs::File::create(target.join("store.db"))?);
        let mut r = FileReader::open(dest, full, entry, key)?;
        io::copy(&mut r, &mut out)?;
        r.finish()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }

    // Objects, oldest backup first (a later copy of a path wins), checked against the index.
    for m in &chain {
        let packs: Vec<&FileEntry> = m.files.iter().filter(|f| is_objects_pack(&f.name)).collect();
        if packs.is_empty() {
            continue;
        }
        let index: HashMap<String, Indexed> = read_index(dest, m, key)?.into_iter().map(|o| (o.p.clone(), o)).collect();
        for entry in packs {
            let mut r = FileReader::open(dest, m, entry, key)?;
            let what = format!("{}/{}", m.id, entry.name);
            restored.objects += unpack(&mut r, &target.join("objects"), |path, data| {
                let o = index.get(path).with_context(|| format!("{what}: {path} is not in the index"))?;
                anyhow::ensure!(
                    o.s == data.len() as u64 && o.h == hex(&Sha256::digest(data)),
                    "{what}: {path} does not match its checksum"
                );
                Ok(())
            })?;
            r.finish()?;
        }
    }

    // The newest secrets.
    if let Some(entry) = last.file(SECRETS_FILE) {
        let mut r = FileReader::open(dest, last, entry, key)?;
        unpack(&mut r, target, |_, _| Ok(()))?;
        r.finish()?;
    }
    fs::File::open(target)?.sync_all()?;
    Ok(restored)
}

/// What `verify` checked.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verified {
    pub backups: Vec<String>,
    pub files: u64,
    pub stored_bytes: u64,
    pub trial_restore: Option<Restored>,
}

/// Checks every file of the backups in `to` (or of `id`'s chain): each is read whole —
/// stored size and SHA-256, then opened and decompressed — and then `id` (default: the newest)
/// is restored into a scratch directory and the result checked (log frames and offsets, store
/// integrity and row counts, objects against their checksums). The first problem is an error
/// naming the file.
pub fn verify(
    to: &str,
    id: Option<&str>,
    key: Option<&Key>,
    s3: &S3Options,
    scratch: Option<&Path>,
) -> anyhow::Result<Verified> {
    let dest = dest::open(to, s3, false)?;
    let ids = dest.ids()?;
    anyhow::ensure!(!ids.is_empty(), "no complete backup in {}", dest.describe());
    let target = match id {
        Some(id) => {
            anyhow::ensure!(ids.contains(&id.to_owned()), "no complete backup {id} in {}", dest.describe());
            id.to_owned()
        }
        None => ids.last().cloned().expect("not empty"),
    };
    let scope: Vec<String> = match id {
        Some(id) => chain(dest.as_ref(), &ids, id, key)?.into_iter().map(|m| m.id).collect(),
        None => ids.clone(),
    };
    let mut v = Verified::default();
    for b in &scope {
        let m = read_manifest(dest.as_ref(), b, key)?;
        if m.kind == Kind::Incremental {
            chain(dest.as_ref(), &ids, b, key)?;
        }
        for entry in &m.files {
            FileReader::open(dest.as_ref(), &m, entry, key)?.finish()?;
            v.files += 1;
            v.stored_bytes += entry.stored_size;
        }
        v.backups.push(b.clone());
    }

    let scratch_dir = match scratch {
        Some(dir) => tempfile::Builder::new().prefix("daybook-verify-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("daybook-verify-").tempdir()?,
    };
    let restored = restore_into(dest.as_ref(), &ids, &target, scratch_dir.path(), key)?;
    check_restored(scratch_dir.path(), &restored).with_context(|| format!("trial restore of {target}"))?;
    v.trial_restore = Some(restored);
    Ok(v)
}

/// Checks a restored data directory against what the restore said it wrote.
fn check_restored(dir: &Path, r: &Restored) -> anyhow::Result<()> {
    let log_dir = dir.join("log");
    let mut expect: Option<i64> = None;
    let mut records = 0u64;
    let mut buf = Vec::new();
    for base in segment_bases(&log_dir)? {
        let path = segment_path(&log_dir, base);
        let mut reader = BufReader::new(fs::File::open(&path)?);
        loop {
            match next_frame(&mut reader, &mut buf)? {
                Ok(offset) => {
                    anyhow::ensure!(
                        expect.is_none_or(|e| e == offset),
                        "{}: offset {offset} where {expect:?} was due",
                        path.display()
                    );
                    expect = Some(offset + 1);
                    records += 1;
                }
                Err(why) if why.is_empty() => break,
                Err(why) => bail!("{}: {why}", path.display()),
            }
        }
    }
    anyhow::ensure!(records == r.records, "the restored log holds {records} records, the backups {}", r.records);
    if records > 0 {
        anyhow::ensure!(
            expect == Some(r.log.next),
            "the restored log ends at {expect:?}, the backups at {}",
            r.log.next
        );
    }
    if !r.store_rows.is_empty() {
        let db = rusqlite::Connection::open(dir.join("store.db"))?;
        let ok: String = db.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        anyhow::ensure!(ok == "ok", "store.db: integrity check says {ok}");
        for (table, n) in &r.store_rows {
            let got: i64 = db.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| row.get(0))?;
            anyhow::ensure!(got as u64 == *n, "store.db: table {table} has {got} rows, the backup {n}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
    use seams::{LogRecord, ReportLog};

    use super::*;

    fn record(i: usize) -> LogRecord {
        LogRecord { key: format!("cam-{i}"), report_kind: "event_started".into(), schema: 2, value: vec![i as u8; 300] }
    }

    async fn append(dir: &Path, range: std::ops::Range<usize>) {
        let config = EmbeddedLogConfig { segment_bytes: 8 << 10, ..EmbeddedLogConfig::default() };
        let log = EmbeddedLog::open(&dir.join("log"), config).unwrap();
        for chunk in range.collect::<Vec<_>>().chunks(7) {
            log.append(chunk.iter().copied().map(record).collect()).await.unwrap();
        }
        log.shutdown().await.unwrap();
    }

    /// Every frame of a log directory, by offset.
    fn frames(dir: &Path) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for base in segment_bases(&dir.join("log")).unwrap() {
            let mut r = BufReader::new(fs::File::open(segment_path(&dir.join("log"), base)).unwrap());
            while let Ok(offset) = next_frame(&mut r, &mut buf).unwrap() {
                out.push((offset, buf.clone()));
            }
        }
        out
    }

    fn opts(data: &Path, to: &Path) -> BackupOptions {
        BackupOptions {
            data_dir: data.to_owned(),
            to: to.display().to_string(),
            full: false,
            key: None,
            keep_full: None,
            s3: S3Options::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn log_pieces_keep_offsets_skip_a_torn_tail_and_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
        append(&data, 0..100).await;
        assert!(segment_bases(&data.join("log")).unwrap().len() > 3, "several segments");
        let objects = data.join("objects/daybook/devices/cam-1/segments");
        fs::create_dir_all(&objects).unwrap();
        for i in 0..10u8 {
            fs::write(objects.join(format!("20261201-{i}")), vec![i; 20_000]).unwrap();
        }
        // A frame being written when the backup reads: half of it on disk.
        let newest = *segment_bases(&data.join("log")).unwrap().last().unwrap();
        let mut f = fs::OpenOptions::new().append(true).open(segment_path(&data.join("log"), newest)).unwrap();
        f.write_all(&[200, 1, 0, 0, 9, 9, 9]).unwrap();
        let full = tokio::task::block_in_place(|| backup(&opts(&data, &dest))).unwrap();
        assert_eq!((full.kind, full.log), (Kind::Full, LogRange { first: 1, next: 101 }));
        assert_eq!(full.files.iter().filter(|f| is_objects_pack(&f.name)).count(), 3, "packs of 64 KiB");
        assert_eq!(full.counts.objects, 10);
        fs::write(objects.join("20261201-new"), b"late").unwrap();
        // The writer cuts the torn tail and goes on.
        append(&data, 100..130).await;
        let inc = tokio::task::block_in_place(|| backup(&opts(&data, &dest))).unwrap();
        assert_eq!(
            (inc.kind, inc.log, inc.parent.as_deref()),
            (Kind::Incremental, LogRange { first: 101, next: 131 }, Some(full.id.as_str()))
        );
        assert_eq!(inc.counts.objects, 1, "only the new object");
        let nothing = tokio::task::block_in_place(|| backup(&opts(&data, &dest))).unwrap();
        assert_eq!(
            (nothing.kind, nothing.log, nothing.counts.records),
            (Kind::Incremental, LogRange { first: 131, next: 131 }, 0)
        );

        let restored = tmp.path().join("restored");
        let ropts = RestoreOptions {
            from: dest.display().to_string(),
            at: None,
            data_dir: restored.clone(),
            force: false,
            key: None,
            s3: S3Options::default(),
        };
        let r = tokio::task::block_in_place(|| restore(&ropts)).unwrap();
        assert_eq!((r.records, r.log), (130, LogRange { first: 1, next: 131 }));
        assert_eq!(frames(&restored), frames(&data));
        for i in 0..10u8 {
            let path = format!("objects/daybook/devices/cam-1/segments/20261201-{i}");
            assert_eq!(fs::read(restored.join(&path)).unwrap(), fs::read(data.join(&path)).unwrap());
            let mtime = |d: &Path| fs::metadata(d.join(&path)).unwrap().modified().unwrap();
            assert_eq!(mtime(&restored), mtime(&data), "mtimes kept");
        }
        assert_eq!(fs::read(restored.join("objects/daybook/devices/cam-1/segments/20261201-new")).unwrap(), b"late");
        // The restored log takes appends at the next offset.
        append(&restored, 130..131).await;
        assert_eq!(frames(&restored).last().unwrap().0, 131);
        // Restoring at the full stops at its end.
        let at_full = tmp.path().join("at-full");
        let r = tokio::task::block_in_place(|| {
            restore(&RestoreOptions { at: Some(full.id.clone()), data_dir: at_full.clone(), ..ropts.clone() })
        })
        .unwrap();
        assert_eq!(r.records, 100);
        assert_eq!(frames(&at_full), frames(&data)[..100].to_vec());
        tokio::task::block_in_place(|| verify(&dest.display().to_string(), None, None, &S3Options::default(), None))
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_closed_segment_fails_the_backup_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
        append(&data, 0..100).await;
        let first = segment_path(&data.join("log"), 1);
        let mut bytes = fs::read(&first).unwrap();
        bytes[100] ^= 0xff;
        fs::write(&first, bytes).unwrap();
        let err = tokio::task::block_in_place(|| backup(&opts(&data, &dest))).unwrap_err();
        assert!(format!("{err:#}").contains("00000000000000000001.seg"), "{err:#}");
        assert!(dest.read_dir().unwrap().next().is_none(), "nothing left behind");
    }
}
