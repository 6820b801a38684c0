//! Stored files: producer → count → zstd → [seal] → SHA-256 → a file in the destination, and
//! back; manifests, and the chains of backups they form.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::crypto::{self, KeyRing};
use super::dest::Dest;
use super::manifest::{FileEntry, Kind, Manifest, FORMAT, MANIFEST};
use super::BackupError;

const ZSTD_LEVEL: i32 = 3;

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

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes file `name` of backup `id` into `stage` through `produce`, sealed with the ring's
/// first key when there is a ring.
pub(super) fn write_file(
    stage: &Path,
    id: &str,
    name: &str,
    key: Option<&KeyRing>,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<FileEntry> {
    let file = BufWriter::with_capacity(1 << 20, fs::File::create(stage.join(name))?);
    let hashed = HashWriter { inner: file, hash: Sha256::new(), n: 0 };
    let sealed = match key {
        Some(k) => MaybeSealed::Sealed(crypto::Sealer::new(hashed, k.sealing(), &format!("{id}/{name}"))?),
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
    Ok(FileEntry {
        name: name.to_owned(),
        size,
        stored_size: n,
        sha256: hex(&hash.finalize()),
        log: None,
        records: None,
    })
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
pub(super) struct FileReader {
    what: String,
    decoder: Option<zstd::Decoder<'static, BufReader<Source>>>,
    state: Arc<Mutex<HashState>>,
    entry: FileEntry,
    plain: u64,
}

fn damaged(what: &str, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {why}"))
}

fn refused(e: BackupError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl FileReader {
    /// Opens file `entry` of the backup whose manifest is `m`, with the key that opened the
    /// manifest. With keys, a file of a manifest that was not sealed is refused (never read
    /// unauthenticated).
    pub(super) fn open(dest: &dyn Dest, m: &Opened, entry: &FileEntry, keys: Option<&KeyRing>) -> io::Result<Self> {
        let what = format!("{}/{}", m.id, entry.name);
        let source = |raw, state: &Arc<Mutex<HashState>>| HashReader { inner: raw, state: state.clone() };
        let state = Arc::new(Mutex::new(HashState::default()));
        let source = match (m.sealed_with, keys) {
            (None, None) => {
                Source::Plain(source(dest.open(&m.id, &entry.name).map_err(|e| damaged(&what, e))?, &state))
            }
            (Some(i), Some(ring)) => {
                let raw = dest.open(&m.id, &entry.name).map_err(|e| damaged(&what, e))?;
                Source::Sealed(crypto::Opener::new(source(raw, &state), &ring.keys()[i], &what)?)
            }
            (None, Some(_)) => return Err(refused(BackupError::NotSealed { what })),
            (Some(_), None) => return Err(refused(BackupError::NeedsKey { what })),
        };
        let mut decoder = zstd::Decoder::new(source)?;
        decoder = decoder.single_frame();
        Ok(Self { what, decoder: Some(decoder), state, entry: entry.clone(), plain: 0 })
    }

    /// Reads to the end and checks everything: nothing after the compressed frame, the plain
    /// size, the stored size and SHA-256.
    pub(super) fn finish(mut self) -> io::Result<()> {
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

/// A manifest read back, and which key of the ring opened it (`None`: it was not sealed).
#[derive(Debug, Clone)]
pub(super) struct Opened {
    pub manifest: Manifest,
    pub sealed_with: Option<usize>,
}

impl std::ops::Deref for Opened {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

/// Reads (and, when sealed, opens) the manifest of backup `id`. With keys, only a sealed
/// manifest that one of them opens is accepted; without, a sealed one is refused as needing a
/// key. Refusals are [`BackupError`]s.
pub(super) fn read_manifest(dest: &dyn Dest, id: &str, keys: Option<&KeyRing>) -> anyhow::Result<Opened> {
    let what = format!("{id}/{MANIFEST}");
    let bytes = dest.get_bytes(id, MANIFEST).with_context(|| format!("{what}: cannot read"))?;
    let sealed = bytes.starts_with(crypto::MAGIC);
    let (bytes, sealed_with) = match (sealed, keys) {
        (true, Some(ring)) => match crypto::open_bytes_with(ring, &what, &bytes) {
            Ok((plain, i)) => (plain, Some(i)),
            Err(_) => return Err(BackupError::WrongKey { what }.into()),
        },
        (true, None) => return Err(BackupError::NeedsKey { what }.into()),
        (false, Some(_)) => return Err(BackupError::NotSealed { what }.into()),
        (false, None) => (bytes, None),
    };
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::Damaged { what: what.clone(), why: format!("not a manifest: {e}") })?;
    let damaged = |why: String| BackupError::Damaged { what: what.clone(), why };
    if m.format != FORMAT {
        return Err(damaged(format!("format {} (this daybook reads format {FORMAT})", m.format)).into());
    }
    if m.id != id {
        return Err(damaged(format!("names backup {}, not {id}", m.id)).into());
    }
    if m.encrypted != sealed {
        return Err(damaged(format!(
            "says encrypted: {}, but it is {}sealed",
            m.encrypted,
            if sealed { "" } else { "not " }
        ))
        .into());
    }
    Ok(Opened { manifest: m, sealed_with })
}

/// The backups `id` depends on, its full first, `id` last: `[full, incremental…]`, `[full,
/// differential]` or `[full, differential, incremental…]`.
pub(super) fn chain(dest: &dyn Dest, ids: &[String], id: &str, keys: Option<&KeyRing>) -> anyhow::Result<Vec<Opened>> {
    let mut out = vec![read_manifest(dest, id, keys)?];
    while let Some(parent) = out.last().expect("one").parent.clone() {
        let child = &out.last().expect("one").id;
        if !ids.contains(&parent) {
            return Err(BackupError::Broken(format!(
                "backup {child}: its parent {parent} is missing from {} (restore an earlier backup, or take a --full one)",
                dest.describe()
            ))
            .into());
        }
        let m = read_manifest(dest, &parent, keys)?;
        if m.log.next != out.last().expect("one").log.first {
            return Err(BackupError::Broken(format!("backup {child} does not continue {parent}'s log")).into());
        }
        // A differential holds everything since its full: any other parent is not its chain.
        if out.last().expect("one").kind == Kind::Differential && m.kind != Kind::Full {
            return Err(BackupError::Broken(format!(
                "backup {child} is differential, but its parent {parent} is not a full backup"
            ))
            .into());
        }
        out.push(m);
        anyhow::ensure!(out.len() < 100_000, "backup {id}: its chain loops");
    }
    out.reverse();
    if out[0].kind != Kind::Full {
        return Err(
            BackupError::Broken(format!("backup {}: the start of the chain is not a full backup", out[0].id)).into()
        );
    }
    Ok(out)
}
