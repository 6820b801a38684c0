//! Encryption of backup files: XChaCha20-Poly1305 (RustCrypto) in the STREAM construction,
//! so a file of any size is sealed and opened in bounded memory.
//!
//! ```text
//! file:  "DAYBOOK-ENC1" | 16 random bytes (nonce prefix) | chunk…
//! chunk: ciphertext of up to 1 MiB of plaintext | 16-byte tag
//! nonce: prefix | u64 big-endian chunk counter, top bit set on the last chunk
//! AAD:   the file's place in the destination ("<backup id>/<file name>")
//! ```
//!
//! A fresh random prefix per file means no nonce repeats under one key. Every chunk is
//! authenticated with its counter and the last one is marked, so a flipped byte, chunks
//! reordered, a file cut at a chunk boundary, or a file moved to another name or backup all
//! fail to open — with the same error as a wrong key, since AEAD cannot tell them apart:
//! "wrong key or tampered: FILE". Never garbage.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The first bytes of every encrypted file.
pub(crate) const MAGIC: &[u8; 12] = b"DAYBOOK-ENC1";
/// Plaintext bytes per chunk.
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;
const PREFIX: usize = 16;
const LAST: u64 = 1 << 63;

/// One backup encryption key: 32 bytes, written as 64 hex characters.
#[derive(Clone)]
pub(crate) struct Key([u8; 32]);

/// The backup encryption keys of a key file: the first seals new backups, every one opens.
/// Rotation: put a new key on the first line and keep the old ones below it until the backups
/// they sealed are pruned, as with `token-keys`.
#[derive(Clone)]
pub struct KeyRing(Vec<Key>);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys)", self.0.len())
    }
}

impl KeyRing {
    /// Reads a key file: one key per line, 64 hex characters each, as
    /// `head -c32 /dev/urandom | xxd -p -c64` writes; blank lines and lines starting with `#`
    /// are ignored. The first key seals.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let what = || format!("encryption key file {}", path.display());
        let text = std::fs::read_to_string(path).with_context(what)?;
        Self::parse(&text).with_context(what)
    }

    /// Keys from text as a key file holds it.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
            .map(|(i, l)| Key::from_hex(l).with_context(|| format!("key {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!keys.is_empty(), "no key in it");
        Ok(Self(keys))
    }

    /// The key that seals.
    pub(crate) fn sealing(&self) -> &Key {
        &self.0[0]
    }

    /// Every key, the sealing one first.
    pub(crate) fn keys(&self) -> &[Key] {
        &self.0
    }
}

impl Key {
    pub(crate) fn from_hex(hex: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "a key is 32 bytes written as 64 hex characters (head -c32 /dev/urandom | xxd -p -c64)"
        );
        let mut key = [0; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Self(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

fn nonce(prefix: &[u8; PREFIX], counter: u64, last: bool) -> XNonce {
    let mut n = [0u8; 24];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..].copy_from_slice(&(counter | if last { LAST } else { 0 }).to_be_bytes());
    n.into()
}

/// The error of a chunk that does not open.
pub(crate) fn tampered(aad: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("wrong key or tampered: {aad}"))
}

/// Seals what is written to it into `inner`; [`finish`](Self::finish) writes the last chunk.
pub(crate) struct Sealer<W: Write> {
    inner: W,
    cipher: XChaCha20Poly1305,
    prefix: [u8; PREFIX],
    aad: String,
    counter: u64,
    buf: Vec<u8>,
}

impl<W: Write> Sealer<W> {
    pub(crate) fn new(mut inner: W, key: &Key, aad: &str) -> io::Result<Self> {
        let mut prefix = [0u8; PREFIX];
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut prefix);
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        Ok(Self {
            inner,
            cipher: key.cipher(),
            prefix,
            aad: aad.to_owned(),
            counter: 0,
            buf: Vec::with_capacity(CHUNK),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let sealed = self
            .cipher
            .encrypt(&nonce(&self.prefix, self.counter, last), Payload { msg: &self.buf, aad: self.aad.as_bytes() })
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&sealed)?;
        self.counter += 1;
        self.buf.clear();
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == CHUNK && !data.is_empty() {
            // More follows: the full chunk is not the last one.
            self.seal(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a sealed stream chunk by chunk.
pub(crate) struct Opener<R: Read> {
    inner: BufReader<R>,
    cipher: XChaCha20Poly1305,
    prefix: [u8; PREFIX],
    aad: String,
    counter: u64,
    plain: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Opener<R> {
    pub(crate) fn new(inner: R, key: &Key, aad: &str) -> io::Result<Self> {
        let mut inner = BufReader::with_capacity(CHUNK + TAG + 1, inner);
        let mut head = [0u8; MAGIC.len() + PREFIX];
        inner.read_exact(&mut head).map_err(|_| tampered(aad))?;
        if &head[..MAGIC.len()] != MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{aad}: not an encrypted backup file")));
        }
        let prefix = head[MAGIC.len()..].try_into().expect("prefix length");
        Ok(Self {
            inner,
            cipher: key.cipher(),
            prefix,
            aad: aad.to_owned(),
            counter: 0,
            plain: Vec::new(),
            at: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut sealed = Vec::with_capacity(CHUNK + TAG);
        (&mut self.inner).take((CHUNK + TAG) as u64).read_to_end(&mut sealed)?;
        let last = self.inner.fill_buf()?.is_empty();
        let plain = self
            .cipher
            .decrypt(&nonce(&self.prefix, self.counter, last), Payload { msg: &sealed, aad: self.aad.as_bytes() })
            .map_err(|_| tampered(&self.aad))?;
        self.counter += 1;
        self.plain = plain;
        self.at = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Seals a small buffer whole (the manifest).
pub(crate) fn seal_bytes(key: &Key, aad: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = Sealer::new(Vec::new(), key, aad)?;
    s.write_all(data)?;
    s.finish()
}

/// Opens a buffer [`seal_bytes`] made.
pub(crate) fn open_bytes(key: &Key, aad: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    Opener::new(data, key, aad)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Opens a buffer [`seal_bytes`] made with any key of `ring`: the plain bytes and which key
/// (its index) opened them.
pub(crate) fn open_bytes_with(ring: &KeyRing, aad: &str, data: &[u8]) -> io::Result<(Vec<u8>, usize)> {
    let mut last = tampered(aad);
    for (i, key) in ring.keys().iter().enumerate() {
        match open_bytes(key, aad, data) {
            Ok(plain) => return Ok((plain, i)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key([b; 32])
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal_bytes(&key(1), "a/b", &data).unwrap();
            assert_eq!(open_bytes(&key(1), "a/b", &sealed).unwrap(), data, "len {len}");
            let err = open_bytes(&key(2), "a/b", &sealed).unwrap_err();
            assert_eq!(err.to_string(), "wrong key or tampered: a/b");
            assert!(open_bytes(&key(1), "a/c", &sealed).is_err(), "another name");
            let mut flipped = sealed.clone();
            let at = flipped.len() / 2;
            flipped[at] ^= 1;
            assert!(open_bytes(&key(1), "a/b", &flipped).is_err(), "flipped, len {len}");
            if len > CHUNK {
                // Cut at a chunk boundary: the last chunk left is not marked last.
                let cut = &sealed[..MAGIC.len() + PREFIX + CHUNK + TAG];
                assert!(open_bytes(&key(1), "a/b", cut).is_err(), "cut, len {len}");
            }
        }
    }

    #[test]
    fn key_files_are_64_hex_characters() {
        assert!(Key::from_hex(&"ab".repeat(32)).is_ok());
        assert!(Key::from_hex(&"ab".repeat(31)).is_err());
        assert!(Key::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_key_ring_seals_with_its_first_key_and_opens_with_any() {
        let text = format!("# new\n{}\n\n{}\n", "01".repeat(32), "02".repeat(32));
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(ring.keys().len(), 2);
        let old = seal_bytes(&key(2), "a/b", b"old").unwrap();
        let new = seal_bytes(ring.sealing(), "a/b", b"new").unwrap();
        assert_eq!(open_bytes_with(&ring, "a/b", &old).unwrap(), (b"old".to_vec(), 1));
        assert_eq!(open_bytes_with(&ring, "a/b", &new).unwrap(), (b"new".to_vec(), 0));
        let other = seal_bytes(&key(3), "a/b", b"x").unwrap();
        assert_eq!(open_bytes_with(&ring, "a/b", &other).unwrap_err().to_string(), "wrong key or tampered: a/b");
        assert!(KeyRing::parse("# nothing\n").is_err());
        assert!(KeyRing::parse(&format!("{}\nxyz\n", "01".repeat(32))).is_err());
    }
}
