//! The shipped log: what `run --replicate-to` puts into a repository between backups (see
//! `ship.rs`), and how a restore reads it back. One owner of this layout:
//!
//! ```text
//! wal/<generation>/generation                                  who ships, from which data dir
//! wal/<generation>/log-<first>-<next>-<last>-<crc>-<ms>.zst     the log's frames [first, next)
//! wal/<generation>/objects-<ms>-<seq>.pack.zst                 objects written since
//! wal/<generation>/secrets-<ms>-<seq>.pack.zst                 the secrets files, on change
//! journal/<ms>-<cid>.json                                     the erasure journal (`journal.rs`)
//! ```
//!
//! A *generation* is one shipping process on one data directory (an incarnation, as
//! Litestream calls it): `<time>-<random>`, so two processes, or a restored copy, never write
//! into each other's pieces. Within a generation the log pieces are consecutive: each starts
//! where the one before ended (a piece stored twice after a lost answer may overlap the next;
//! a restore takes the longest). `last` and `crc` name the piece's last record and its
//! checksum, so pruning can tell from the name alone whether a backup of this log covers it;
//! `ms` is when it was shipped.
//!
//! A log piece is, before zstd (with its checksum) and sealing: `DBKWAL1\0 | i64 offset | u32
//! crc` of the record before its first one (`-1 | 0` for none), then the frames verbatim. The
//! packs are those of the backups (`packs.rs`). Everything is sealed with the key ring's first
//! key when there is one, under its path as associated data; with keys, a plain piece is
//! refused as a plain backup is.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use anyhow::Context;
use infra::embedded_log::files as logfiles;
use serde::{Deserialize, Serialize};

use super::crypto::{self, KeyRing};
use super::dest::Dest;
use super::BackupError;

/// Where generations live in a repository.
pub(super) const WAL: &str = "wal/";
/// The erasure journal (`journal.rs`): every restore applies its entries again.
pub(super) const JOURNAL: &str = "journal/";
const GENERATION_FILE: &str = "generation";
const MAGIC: &[u8; 8] = b"DBKWAL1\0";
/// Bytes of a log piece before its frames.
pub(super) const PIECE_HEADER: usize = 8 + 8 + 4;
/// Fast rather than small: a round compresses what arrived in the last second, and under a
/// burst that is tens of megabytes on the service's cores (log frames still shrink 3–5×).
const ZSTD_LEVEL: i32 = 1;

/// The `generation` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Generation {
    pub(super) format: u32,
    pub(super) id: String,
    /// RFC 3339.
    pub(super) created_at: String,
    pub(super) host: String,
    pub(super) pid: u32,
    pub(super) data_dir: String,
    /// The first offset it ships.
    pub(super) start: i64,
    /// The backup of this repository whose end it started from, if any.
    pub(super) based_on: Option<String>,
}

/// A new generation id: sortable by time, unique by its random part.
pub(super) fn new_generation_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    format!("{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// One log piece, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogPiece {
    pub(super) path: String,
    pub(super) first: i64,
    pub(super) next: i64,
    /// The offset and checksum of its last record.
    pub(super) last: i64,
    pub(super) crc: u32,
    /// When it was shipped (Unix ms).
    pub(super) ms: i64,
}

/// A pack (objects or secrets), from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pack {
    pub(super) path: String,
    pub(super) ms: i64,
}

/// What a repository holds of one generation.
#[derive(Debug, Clone, Default)]
pub(super) struct Shipped {
    pub(super) generation: String,
    pub(super) has_info: bool,
    /// By first offset.
    pub(super) log: Vec<LogPiece>,
    pub(super) objects: Vec<Pack>,
    pub(super) secrets: Vec<Pack>,
    /// Names this build does not know (kept, never deleted by pruning).
    pub(super) unknown: Vec<String>,
}

impl Shipped {
    /// When it last shipped anything (Unix ms).
    pub(super) fn newest_ms(&self) -> i64 {
        let logs = self.log.iter().map(|p| p.ms);
        let packs = self.objects.iter().chain(&self.secrets).map(|p| p.ms);
        logs.chain(packs).max().unwrap_or(0)
    }

    /// Every path of it.
    pub(super) fn paths(&self) -> Vec<String> {
        let mut out: Vec<String> = self.log.iter().map(|p| p.path.clone()).collect();
        out.extend(self.objects.iter().chain(&self.secrets).map(|p| p.path.clone()));
        if self.has_info {
            out.push(generation_path(&self.generation));
        }
        out
    }
}

pub(super) fn generation_path(generation: &str) -> String {
    format!("{WAL}{generation}/{GENERATION_FILE}")
}

pub(super) fn log_piece_path(generation: &str, first: i64, next: i64, last: i64, crc: u32, ms: i64) -> String {
    format!("{WAL}{generation}/log-{first:020}-{next:020}-{last:020}-{crc:08x}-{ms:013}.zst")
}

pub(super) fn pack_path(generation: &str, what: &str, ms: i64, seq: u64) -> String {
    format!("{WAL}{generation}/{what}-{ms:013}-{seq:06}.pack.zst")
}

fn parse_log(path: &str, name: &str) -> Option<LogPiece> {
    let rest = name.strip_prefix("log-")?.strip_suffix(".zst")?;
    let parts: Vec<&str> = rest.split('-').collect();
    let [first, next, last, crc, ms] = parts.as_slice() else { return None };
    Some(LogPiece {
        path: path.to_owned(),
        first: first.parse().ok()?,
        next: next.parse().ok()?,
        last: last.parse().ok()?,
        crc: u32::from_str_radix(crc, 16).ok()?,
        ms: ms.parse().ok()?,
    })
}

fn parse_pack(path: &str, name: &str, what: &str) -> Option<Pack> {
    let rest = name.strip_prefix(what)?.strip_prefix('-')?.strip_suffix(".pack.zst")?;
    let (ms, seq) = rest.split_once('-')?;
    seq.parse::<u64>().ok()?;
    Some(Pack { path: path.to_owned(), ms: ms.parse().ok()? })
}

/// Every generation in `dest`, oldest first.
pub(super) fn list(dest: &dyn Dest) -> io::Result<Vec<Shipped>> {
    let mut by: BTreeMap<String, Shipped> = BTreeMap::new();
    for path in dest.list_paths(WAL)? {
        let Some((generation, name)) = path.strip_prefix(WAL).and_then(|r| r.split_once('/')) else { continue };
        let g = by
            .entry(generation.to_owned())
            .or_insert_with(|| Shipped { generation: generation.to_owned(), ..Shipped::default() });
        if name == GENERATION_FILE {
            g.has_info = true;
        } else if let Some(p) = parse_log(&path, name) {
            g.log.push(p);
        } else if let Some(p) = parse_pack(&path, name, "objects") {
            g.objects.push(p);
        } else if let Some(p) = parse_pack(&path, name, "secrets") {
            g.secrets.push(p);
        } else {
            g.unknown.push(path);
        }
    }
    let mut out: Vec<Shipped> = by.into_values().collect();
    for g in &mut out {
        g.log.sort_by_key(|p| (p.first, p.next));
        g.objects.sort_by_key(|p| p.path.clone());
        g.secrets.sort_by_key(|p| p.path.clone());
    }
    Ok(out)
}

/// Compresses and (with a key ring) seals `plain` as stored file `path`.
pub(super) fn encode(key: Option<&KeyRing>, path: &str, plain: &[u8]) -> io::Result<Vec<u8>> {
    let mut z = zstd::Encoder::new(Vec::with_capacity(plain.len() / 3 + 64), ZSTD_LEVEL)?;
    z.include_checksum(true)?;
    z.write_all(plain)?;
    let compressed = z.finish()?;
    match key {
        Some(k) => crypto::seal_bytes(k.sealing(), path, &compressed),
        None => Ok(compressed),
    }
}

/// Opens and decompresses a stored file [`encode`] made. Refusals are [`BackupError`]s.
pub(super) fn decode(keys: Option<&KeyRing>, path: &str, stored: &[u8]) -> Result<Vec<u8>, BackupError> {
    let what = path.to_owned();
    let compressed = match (stored.starts_with(crypto::MAGIC), keys) {
        (true, Some(ring)) => {
            crypto::open_bytes_with(ring, path, stored).map_err(|_| BackupError::WrongKey { what: what.clone() })?.0
        }
        (true, None) => return Err(BackupError::NeedsKey { what }),
        (false, Some(_)) => return Err(BackupError::NotSealed { what }),
        (false, None) => stored.to_vec(),
    };
    let mut plain = Vec::new();
    zstd::Decoder::new(&compressed[..])
        .and_then(|mut d| d.read_to_end(&mut plain))
        .map_err(|e| BackupError::Damaged { what, why: format!("cannot decompress: {e}") })?;
    Ok(plain)
}

/// The plain bytes of a log piece: the record before it, then its frames.
pub(super) fn piece_bytes(prev: Option<(i64, u32)>, frames: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PIECE_HEADER + frames.len());
    out.extend_from_slice(MAGIC);
    let (offset, crc) = prev.unwrap_or((-1, 0));
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(frames);
    out
}

/// A log piece read back and checked: every frame checks, offsets rise inside its range, and
/// its last record is the one its name says.
#[derive(Debug)]
pub(super) struct Frames {
    pub(super) prev: Option<(i64, u32)>,
    /// Each frame: offset, append time (ms), checksum, and its bytes' range in `bytes`.
    pub(super) frames: Vec<(i64, i64, u32, std::ops::Range<usize>)>,
    pub(super) bytes: Vec<u8>,
}

/// Reads log piece `p` of `dest` and checks it.
pub(super) fn read_piece(dest: &dyn Dest, keys: Option<&KeyRing>, p: &LogPiece) -> anyhow::Result<Frames> {
    let stored = dest.get_path(&p.path).with_context(|| format!("{}: cannot read {}", dest.describe(), p.path))?;
    let plain = decode(keys, &p.path, &stored)?;
    let damaged = |why: String| BackupError::Damaged { what: format!("{}/{}", dest.describe(), p.path), why };
    if plain.len() < PIECE_HEADER || &plain[..8] != MAGIC {
        return Err(damaged("not a log piece".into()).into());
    }
    let offset = i64::from_le_bytes(plain[8..16].try_into().expect("8"));
    let crc = u32::from_le_bytes(plain[16..20].try_into().expect("4"));
    let prev = (offset >= 0).then_some((offset, crc));
    let mut frames = Vec::new();
    let mut r = &plain[PIECE_HEADER..];
    let mut buf = Vec::new();
    let mut at = PIECE_HEADER;
    loop {
        match logfiles::read_raw(&mut r, &mut buf)? {
            Ok(Some(offset)) => {
                let last = frames.last().map(|f: &(i64, i64, u32, std::ops::Range<usize>)| f.0);
                if offset < p.first || offset >= p.next || last.is_some_and(|l| offset <= l) {
                    return Err(
                        damaged(format!("offset {offset} after {last:?}, outside [{}, {})", p.first, p.next)).into()
                    );
                }
                frames.push((offset, logfiles::raw_ts(&buf), logfiles::raw_crc(&buf), at..at + buf.len()));
                at += buf.len();
            }
            Ok(None) => break,
            Err(stop) => return Err(damaged(format!("{stop}")).into()),
        }
    }
    match frames.last() {
        Some(&(offset, _, crc, _)) if offset == p.last && crc == p.crc => {}
        other => {
            return Err(damaged(format!(
                "ends with {:?}, its name says offset {} crc {:08x}",
                other.map(|f| (f.0, f.2)),
                p.last,
                p.crc
            ))
            .into())
        }
    }
    Ok(Frames { prev, frames, bytes: plain })
}

/// Where a restore goes on from: the chain restored so far ends before `next`, its last record
/// being `end` (offset, checksum).
#[derive(Debug, Clone, Copy)]
pub(super) struct End {
    pub(super) next: i64,
    pub(super) last: Option<(i64, u32)>,
}

/// The pieces of one generation that continue a restored chain.
#[derive(Debug)]
pub(super) struct Continuation {
    pub(super) generation: String,
    /// Consecutive; the first holds `end.next` (or starts there).
    pub(super) pieces: Vec<LogPiece>,
    pub(super) objects: Vec<Pack>,
    pub(super) secrets: Vec<Pack>,
}

/// The newest generation in `shipped` whose pieces continue the log that ends at `end`: a
/// piece holds the chain's last record with the same checksum, or starts right after it with
/// it as the record before. Its pieces from there on, as far as they are consecutive.
/// `None`: no generation continues it.
pub(super) fn continuation(
    dest: &dyn Dest,
    keys: Option<&KeyRing>,
    shipped: &[Shipped],
    end: End,
) -> anyhow::Result<Option<Continuation>> {
    for g in shipped.iter().rev() {
        // The consecutive run from the piece that holds or starts at `end.next`.
        let mut run: Vec<LogPiece> = Vec::new();
        let mut cursor = end.next;
        loop {
            let best = g.log.iter().filter(|p| p.first <= cursor && p.next > cursor).max_by_key(|p| p.next);
            match best {
                Some(p) => {
                    run.push(p.clone());
                    cursor = p.next;
                }
                None => break,
            }
        }
        let Some(first) = run.first() else { continue };
        // Lineage: the chain's last record, as this generation has it.
        let continues = match end.last {
            Some((offset, crc)) if first.first <= offset => {
                let f = read_piece(dest, keys, first)?;
                f.frames.iter().any(|fr| fr.0 == offset && fr.2 == crc)
            }
            Some(last) => read_piece(dest, keys, first)?.prev == Some(last),
            None => read_piece(dest, keys, first)?.prev.is_none(),
        };
        if !continues {
            tracing::info!(generation = %g.generation, "shipped pieces of another log (another data directory or a restored copy that went on differently): not used");
            continue;
        }
        return Ok(Some(Continuation {
            generation: g.generation.clone(),
            pieces: run,
            objects: g.objects.clone(),
            secrets: g.secrets.clone(),
        }));
    }
    Ok(None)
}

/// Stores the `generation` file of a new generation.
pub(super) fn put_generation(dest: &dyn Dest, key: Option<&KeyRing>, g: &Generation) -> io::Result<()> {
    let path = generation_path(&g.id);
    let json = serde_json::to_vec_pretty(g).map_err(io::Error::other)?;
    dest.put_path(&path, &encode(key, &path, &json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = log_piece_path("20261207T050000000Z-0a0b0c0d", 5, 9, 8, 0xdeadbeef, 1_765_000_000_000);
        let (_, name) = p.rsplit_once('/').unwrap();
        let l = parse_log(&p, name).unwrap();
        assert_eq!((l.first, l.next, l.last, l.crc, l.ms), (5, 9, 8, 0xdeadbeef, 1_765_000_000_000));
        let o = pack_path("g", "objects", 42, 3);
        assert_eq!(parse_pack(&o, o.rsplit_once('/').unwrap().1, "objects").unwrap().ms, 42);
        assert!(parse_pack(&o, o.rsplit_once('/').unwrap().1, "secrets").is_none());
    }

    #[test]
    fn encode_refuses_what_the_keys_do_not_allow() {
        let ring = KeyRing::parse(&"01".repeat(32)).unwrap();
        let other = KeyRing::parse(&"02".repeat(32)).unwrap();
        let sealed = encode(Some(&ring), "wal/g/x", b"frames").unwrap();
        let plain = encode(None, "wal/g/x", b"frames").unwrap();
        assert_eq!(decode(Some(&ring), "wal/g/x", &sealed).unwrap(), b"frames");
        assert_eq!(decode(None, "wal/g/x", &plain).unwrap(), b"frames");
        assert!(matches!(decode(None, "wal/g/x", &sealed), Err(BackupError::NeedsKey { .. })));
        assert!(matches!(decode(Some(&ring), "wal/g/x", &plain), Err(BackupError::NotSealed { .. })));
        assert!(matches!(decode(Some(&other), "wal/g/x", &sealed), Err(BackupError::WrongKey { .. })));
        // Sealed under its path: moved to another name, it does not open.
        assert!(matches!(decode(Some(&ring), "wal/g/y", &sealed), Err(BackupError::WrongKey { .. })));
        let mut flipped = plain.clone();
        let n = flipped.len();
        flipped[n - 2] ^= 1;
        assert!(matches!(decode(None, "wal/g/x", &flipped), Err(BackupError::Damaged { .. })));
    }
}
