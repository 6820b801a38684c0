//! Bearer tokens: HS256 JWTs with a key id. A device token names one device and may write
//! only as it; a viewer token names the devices it may read. Several keys verify at once
//! (rotation: add a key, sign with it, retire the old one), and a device's tokens issued
//! before a given second can be revoked; both are swapped in whole while serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use schemas::{DeviceId, DeviceZone};
use serde::{Deserialize, Serialize};

use crate::web::{ApiError, ErrorCode};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A camera, writing its own reports.
    Device,
    /// A person, reading the devices listed in `devices`.
    Viewer,
}

/// The token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Device id (device tokens) or viewer label.
    pub sub: String,
    /// Device or viewer.
    pub role: Role,
    /// Devices a viewer may read.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Expiry (epoch seconds).
    pub exp: i64,
    /// Issued at (epoch seconds).
    pub iat: i64,
    /// A device's time zone (IANA name), set by the operator: the day of a timestamp the
    /// camera sends without an offset (`Z`) is taken in this zone at that instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

/// A device as its token names it.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device.
    pub cid: DeviceId,
    /// Its configured zone, if the token carries one.
    pub zone: Option<DeviceZone>,
}

/// The signing and verification keys, and the revoked devices: everything a token check
/// needs, replaced whole when an operator rotates a key or revokes a device.
///
/// HS256 (a shared secret per key) rather than EdDSA/ES256: every device request verifies a
/// token, tens of thousands per second at midnight, and an HMAC costs about a microsecond
/// where an Ed25519 verification costs tens — as much again as the rest of the request. The
/// price is that every process that verifies could also mint; daybook's verifying processes
/// are the operator's own (ingest and api), hold the keys in a 0600 file or the environment,
/// and are the ones that would be trusted with the data anyway. See SECURITY.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    /// `(kid, secret)`; the first one signs, all of them verify.
    pub keys: Vec<(String, Vec<u8>)>,
    /// Device id → epoch second: that device's tokens issued before it are refused.
    pub revoked: HashMap<String, i64>,
}

/// Shortest secret of a key: HS256 with a short key lets anyone who guesses it mint tokens.
pub const MIN_KEY_BYTES: usize = 32;

/// The key id of a token without one (issued before key rotation existed), and of the single
/// key made from a plain secret.
pub const DEFAULT_KID: &str = "default";

impl KeyRing {
    /// One key, `DEFAULT_KID`, nothing revoked.
    pub fn single(secret: &[u8]) -> Self {
        Self { keys: vec![(DEFAULT_KID.to_owned(), secret.to_vec())], revoked: HashMap::new() }
    }

    /// Checks the ring: at least one key, ids unique and plain (`[A-Za-z0-9._-]`, ≤ 64),
    /// every secret at least [`MIN_KEY_BYTES`].
    pub fn check(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err("no token key: at least one is needed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (kid, secret) in &self.keys {
            let plain = !kid.is_empty()
                && kid.len() <= 64
                && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !plain {
                return Err(format!("token key id {kid:?} must be 1–64 of [A-Za-z0-9._-]"));
            }
            if !seen.insert(kid.as_str()) {
                return Err(format!("token key id {kid} appears twice"));
            }
            if secret.len() < MIN_KEY_BYTES {
                return Err(format!("token key {kid} is {} bytes; at least {MIN_KEY_BYTES} are needed", secret.len()));
            }
        }
        Ok(())
    }
}

struct Keys {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    revoked: HashMap<String, i64>,
    ring: KeyRing,
}

/// Issues and checks tokens. Clones share the keys: [`Auth::reload`] on one (an operator
/// rotated a key or revoked a device) takes effect for every request at once, with no lock
/// on the request path.
#[derive(Clone)]
pub struct Auth {
    keys: Arc<ArcSwap<Keys>>,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

fn compile(ring: KeyRing) -> Result<Keys, String> {
    ring.check()?;
    let (signing_kid, secret) = ring.keys[0].clone();
    Ok(Keys {
        signing_kid,
        encoding: EncodingKey::from_secret(&secret),
        decoding: ring.keys.iter().map(|(kid, s)| (kid.clone(), DecodingKey::from_secret(s))).collect(),
        revoked: ring.revoked.clone(),
        ring,
    })
}

impl Auth {
    /// From one signing secret (at least 32 bytes), as key `DEFAULT_KID`.
    pub fn new(secret: &[u8]) -> Self {
        Self::from_ring(KeyRing::single(secret)).expect("a single key of a checked secret")
    }

    /// From a key ring (see [`KeyRing::check`]).
    pub fn from_ring(ring: KeyRing) -> Result<Self, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self { keys: Arc::new(ArcSwap::from_pointee(compile(ring)?)), validation })
    }

    /// Replaces the keys and revocations, if they changed; returns whether they did.
    pub fn reload(&self, ring: KeyRing) -> Result<bool, String> {
        if self.keys.load().ring == ring {
            return Ok(false);
        }
        self.keys.store(Arc::new(compile(ring)?));
        Ok(true)
    }

    fn issue(&self, sub: String, role: Role, devices: Vec<String>, tz: Option<String>, ttl: Duration) -> String {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims { sub, role, devices, iat, exp: iat + ttl.as_secs() as i64, tz };
        let keys = self.keys.load();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.signing_kid.clone());
        encode(&header, &claims, &keys.encoding).expect("HS256 signing cannot fail")
    }

    /// A token for device `cid`.
    pub fn device_token(&self, cid: &DeviceId, ttl: Duration) -> String {
        self.issue(cid.to_string(), Role::Device, Vec::new(), None, ttl)
    }

    /// A token for device `cid` in time zone `zone` (used for timestamps sent as `Z`).
    pub fn device_token_in(&self, cid: &DeviceId, zone: Option<DeviceZone>, ttl: Duration) -> String {
        self.issue(cid.to_string(), Role::Device, Vec::new(), zone.map(|z| z.name().to_owned()), ttl)
    }

    /// A token that may read `devices`.
    pub fn viewer_token(&self, devices: &[DeviceId], ttl: Duration) -> String {
        self.issue("viewer".into(), Role::Viewer, devices.iter().map(ToString::to_string).collect(), None, ttl)
    }

    /// Checks the `Authorization: Bearer …` header: 401 when absent, forged or expired.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::unauthorized("authorization must be `Bearer <token>`"))?;
        let token = token.trim();
        let header = decode_header(token).map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let keys = self.keys.load();
        let kid = header.kid.as_deref().unwrap_or(DEFAULT_KID);
        let key = keys
            .decoding
            .get(kid)
            .ok_or_else(|| ApiError::unauthorized(format!("invalid token: unknown or retired key {kid:?}")))?;
        let claims = decode::<Claims>(token, key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        if claims.role == Role::Device {
            if let Some(cutoff) = keys.revoked.get(&claims.sub) {
                if claims.iat < *cutoff {
                    return Err(ApiError::unauthorized(format!(
                        "token revoked: device {}'s tokens issued before {cutoff} (epoch s) are no longer accepted",
                        claims.sub
                    )));
                }
            }
        }
        Ok(claims)
    }

    /// 401 unless a valid device token (with a known zone, if any); 403 unless it is `cid`'s.
    pub fn device(&self, headers: &HeaderMap, cid: &str) -> Result<Device, ApiError> {
        let claims = self.verify(headers)?;
        if claims.role != Role::Device {
            return Err(ApiError::forbidden("a viewer token cannot write reports"));
        }
        if claims.sub != cid {
            return Err(ApiError::forbidden(format!("this token may only write as device {}", claims.sub)));
        }
        let zone = claims
            .tz
            .as_deref()
            .map(DeviceZone::parse)
            .transpose()
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let cid = DeviceId::parse(cid).map_err(|e| ApiError::invalid(ErrorCode::InvalidDeviceId, e.to_string()))?;
        Ok(Device { cid, zone })
    }

    /// 401 unless a valid viewer token; 403 unless it names `cid`.
    pub fn viewer(&self, headers: &HeaderMap, cid: &str) -> Result<DeviceId, ApiError> {
        let claims = self.verify(headers)?;
        if claims.role != Role::Viewer {
            return Err(ApiError::forbidden("a device token cannot read"));
        }
        if !claims.devices.iter().any(|d| d == cid) {
            return Err(ApiError::forbidden(format!("this token may not read device {cid}")));
        }
        DeviceId::parse(cid).map_err(|e| ApiError::invalid(ErrorCode::InvalidDeviceId, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    fn key(kid: &str, b: u8) -> (String, Vec<u8>) {
        (kid.to_owned(), vec![b; 32])
    }

    #[test]
    fn rotation_add_sign_with_new_retire_old() {
        let cid = DeviceId::parse("cam-1").unwrap();
        let auth = Auth::from_ring(KeyRing { keys: vec![key("k1", 1)], revoked: HashMap::new() }).unwrap();
        let old = auth.device_token(&cid, Duration::from_secs(600));
        // Add k2 and sign with it; k1's tokens still verify.
        assert!(auth.reload(KeyRing { keys: vec![key("k2", 2), key("k1", 1)], revoked: HashMap::new() }).unwrap());
        let new = auth.device_token(&cid, Duration::from_secs(600));
        assert_eq!(decode_header(&new).unwrap().kid.as_deref(), Some("k2"));
        assert!(auth.device(&bearer(&old), "cam-1").is_ok());
        assert!(auth.device(&bearer(&new), "cam-1").is_ok());
        // Retire k1: its tokens are refused, k2's are not.
        auth.reload(KeyRing { keys: vec![key("k2", 2)], revoked: HashMap::new() }).unwrap();
        let e = auth.device(&bearer(&old), "cam-1").unwrap_err();
        assert!(e.message.contains("retired"), "{}", e.message);
        assert!(auth.device(&bearer(&new), "cam-1").is_ok());
    }

    #[test]
    fn tokens_without_a_kid_verify_with_the_default_key() {
        let secret = [7u8; 32];
        let claims = Claims {
            sub: "cam-1".into(),
            role: Role::Device,
            devices: vec![],
            exp: chrono::Utc::now().timestamp() + 600,
            iat: chrono::Utc::now().timestamp(),
            tz: None,
        };
        let legacy = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret)).unwrap();
        let auth = Auth::from_ring(KeyRing {
            keys: vec![key("k9", 9), (DEFAULT_KID.into(), secret.to_vec())],
            revoked: HashMap::new(),
        })
        .unwrap();
        assert!(auth.device(&bearer(&legacy), "cam-1").is_ok());
    }

    #[test]
    fn revocation_refuses_a_devices_older_tokens_only() {
        let (a, b) = (DeviceId::parse("cam-a").unwrap(), DeviceId::parse("cam-b").unwrap());
        let auth = Auth::new(&[3u8; 32]);
        let (ta, tb) =
            (auth.device_token(&a, Duration::from_secs(600)), auth.device_token(&b, Duration::from_secs(600)));
        let now = chrono::Utc::now().timestamp();
        let mut ring = KeyRing::single(&[3u8; 32]);
        ring.revoked.insert("cam-a".into(), now + 1);
        auth.reload(ring.clone()).unwrap();
        let e = auth.device(&bearer(&ta), "cam-a").unwrap_err();
        assert!(e.message.contains("revoked"), "{}", e.message);
        assert!(auth.device(&bearer(&tb), "cam-b").is_ok(), "other devices are untouched");
        // A token issued after the cutoff works.
        ring.revoked.insert("cam-a".into(), now - 1);
        auth.reload(ring).unwrap();
        assert!(auth.device(&bearer(&auth.device_token(&a, Duration::from_secs(600))), "cam-a").is_ok());
    }

    #[test]
    fn bad_rings_are_refused() {
        for keys in [vec![], vec![key("k 1", 1)], vec![key("k1", 1), key("k1", 2)], vec![("k1".into(), vec![1; 31])]] {
            assert!(KeyRing { keys, revoked: HashMap::new() }.check().is_err());
        }
    }
}
