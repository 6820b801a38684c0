//! Sealing of webhook signing secrets: a subscription's secrets go on the log (and so into
//! backups, the store and Kafka) only encrypted with the deployment's notify key, never in
//! clear. XChaCha20-Poly1305 (the AEAD the backups already use: a random 192-bit nonce per
//! seal, no counter to keep), with the subscription id as associated data, so a sealed secret
//! copied into another subscription does not open.
//!
//! The key is 256 bits in hex in a file: `DATA_DIR/notify-key` (created on first use, mode
//! 0600), or `--notify-key-file` — every process that manages or delivers subscriptions of a
//! deployment reads the same one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use schemas::{Sealed, SubscriptionId};

/// The first byte of a sealed secret: the format, so another cipher can follow.
const FORMAT: u8 = 1;
const NONCE: usize = 24;

/// The key that seals and opens signing secrets.
#[derive(Clone)]
pub struct NotifyKey(XChaCha20Poly1305);

impl std::fmt::Debug for NotifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyKey(..)")
    }
}

/// Where the key is: the given file, else `DATA_DIR/notify-key`.
pub fn key_path(data_dir: &Path, file: Option<&Path>) -> PathBuf {
    file.map_or_else(|| data_dir.join("notify-key"), Path::to_owned)
}

impl NotifyKey {
    /// Reads the key at `key_path(data_dir, file)`; `DATA_DIR/notify-key` is created on first
    /// use, a named file must exist.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> anyhow::Result<Self> {
        let hex = match file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the notify key {}", path.display()))?
                .trim()
                .to_owned(),
            None => crate::secrets::read_or_create(data_dir, "notify-key", crate::secrets::random_hex)?,
        };
        let bytes = decode_hex(&hex)
            .filter(|b| b.len() == 32)
            .with_context(|| format!("{}: a notify key is 64 hex digits", key_path(data_dir, file).display()))?;
        Ok(Self(XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key")))
    }

    /// Encrypts `secret` for subscription `id`.
    pub fn seal(&self, id: &SubscriptionId, secret: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE];
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut nonce);
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad: id.as_str().as_bytes() })
            .expect("encryption of a short secret cannot fail");
        Sealed([&[FORMAT][..], &nonce, &sealed].concat())
    }

    /// Decrypts a secret sealed for subscription `id`.
    pub fn open(&self, id: &SubscriptionId, sealed: &Sealed) -> anyhow::Result<Vec<u8>> {
        let b = &sealed.0;
        anyhow::ensure!(b.len() > 1 + NONCE && b[0] == FORMAT, "not a sealed secret of format {FORMAT}");
        self.0
            .decrypt(XNonce::from_slice(&b[1..=NONCE]), Payload { msg: &b[1 + NONCE..], aad: id.as_str().as_bytes() })
            .map_err(|_| anyhow::anyhow!("the secret of {id} does not open with this notify key (another key file?)"))
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// A fresh signing secret: 32 random bytes.
pub fn new_secret() -> Vec<u8> {
    let mut b = vec![0u8; 32];
    chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut b);
    b
}

/// A secret as receivers configure it: `whsec_` + base64 (Standard Webhooks).
pub fn whsec(secret: &[u8]) -> String {
    use base64::Engine as _;
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_subscription_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = NotifyKey::load(dir.path(), None).unwrap();
        let again = NotifyKey::load(dir.path(), None).unwrap();
        let (a, b) = (SubscriptionId::parse("sub-a").unwrap(), SubscriptionId::parse("sub-b").unwrap());
        let secret = new_secret();
        let sealed = key.seal(&a, &secret);
        assert!(!sealed.0.windows(secret.len()).any(|w| w == secret), "never in clear");
        assert_eq!(again.open(&a, &sealed).unwrap(), secret);
        assert!(key.open(&b, &sealed).is_err(), "bound to its subscription");
        let other = tempfile::tempdir().unwrap();
        assert!(NotifyKey::load(other.path(), None).unwrap().open(&a, &sealed).is_err());
        assert!(whsec(&secret).starts_with("whsec_"));
    }
}
