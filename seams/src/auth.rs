//! Bearer tokens: HS256 JWTs with a key id. A device token names one device and may write
//! only as it; a viewer token names the devices it may read. Several keys verify at once
//! (rotation: add a key, sign with it, retire the old one), and a device's tokens issued
//! before a given second can be revoked; both are swapped in whole while serving.
//!
//! A token is verified (signature, JSON parse) once, then kept in a bounded cache of the
//! current key ring: a request with a token seen before costs a hash lookup plus the checks
//! that can change with time — expiry and revocation — done on every request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use quick_cache::sync::Cache;
use ring::hmac;
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
    /// What a viewer may do beyond reading, space-separated (`manage`: delete its devices'
    /// events, docs/tokens.md); absent: read only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A device's plan, set by the operator: days of its history kept
    /// (`schemas::owner::MIN_PLAN_DAYS..=MAX_PLAN_DAYS`); absent: the deployment's retention
    /// (docs/data-model.md, Plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// The scope that lets a viewer manage its devices' footage (delete events).
pub const MANAGE_SCOPE: &str = "manage";

impl Claims {
    /// Whether the token's scope holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.as_deref().is_some_and(|s| s.split(' ').any(|x| x == scope))
    }
}

/// A device as its token names it.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device.
    pub cid: DeviceId,
    /// Its configured zone, if the token carries one.
    pub zone: Option<DeviceZone>,
    /// Its plan (days of history kept), if the token carries one.
    pub retention_days: Option<u32>,
}

/// Refuses a plan outside `MIN_PLAN_DAYS..=MAX_PLAN_DAYS`, saying so.
pub fn check_plan(days: u32) -> Result<u32, String> {
    use schemas::owner::{MAX_PLAN_DAYS, MIN_PLAN_DAYS};
    if (MIN_PLAN_DAYS..=MAX_PLAN_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(format!("retention_days {days} must be {MIN_PLAN_DAYS}..={MAX_PLAN_DAYS}"))
    }
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

/// Most verified tokens kept at once, per key ring. The working set is one token per live
/// device (a camera sends the same token with every request until it expires), and
/// daybook is sized for 100 000 devices. Memory: an entry is the token as key (~230 B for
/// a device token with a kid) plus its [`Verified`] (~130 B: claims and their id strings)
/// plus the cache's slot and index (~40 B), so about 0.4 KB; 100 000 entries are ≈ 40 MB
/// at most, reached only with that many devices active within a token lifetime.
pub const TOKEN_CACHE_ENTRIES: usize = 100_000;

/// Seconds a token is still accepted past its `exp` (clock skew between issuer and server).
const LEEWAY_S: i64 = 30;

/// The fields of a token's header that are read (others are ignored, as `typ` is).
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
}

/// A token that passed the signature check and the parse: what the cache keeps. Only what
/// cannot change for a given token is here; expiry and revocation are checked per request.
#[derive(Debug)]
struct Verified {
    claims: Claims,
    /// A device token's zone, parsed once (`Ok(None)` without one, `Err` for an unknown one).
    zone: Result<Option<DeviceZone>, String>,
}

/// Verified tokens, keyed by the whole token string: a hit needs the exact bytes that were
/// verified, so a tampered token (a changed claim, kid or signature) can never be served the
/// genuine one's claims — no hash collision to reason about, at the price of ~230 B per key.
///
/// `quick_cache` rather than `moka` or a hand-written map: bounded (S3-FIFO eviction, which
/// keeps the frequently seen tokens when a scan of one-off ones passes through), sharded
/// behind short read-write locks so concurrent lookups from every worker do not contend,
/// and light — two small dependencies (`parking_lot`, `foldhash`) already in the tree,
/// where `moka` brings its own background housekeeping, crossbeam channels and a heavier
/// per-entry bookkeeping for features (TTL, listeners) this cache does not need: expiry is
/// a comparison against the cached `exp`.
type TokenCache = Cache<Box<str>, Arc<Verified>>;

/// One key ring, compiled. The token cache lives here rather than beside it: a reload that
/// changes anything (a key retired, a device revoked) swaps in a new `Keys` with an empty
/// cache, so no token verified under the old ring is served from the new one — not even one
/// inserted by a request that loaded the old ring just before the swap.
struct Keys {
    signing_kid: String,
    encoding: EncodingKey,
    /// Per kid, the HMAC key, set up once per ring.
    decoding: HashMap<String, hmac::Key>,
    revoked: HashMap<String, i64>,
    ring: KeyRing,
    /// `None` when the cache is off ([`Auth::with_token_cache`] with 0 entries).
    tokens: Option<TokenCache>,
}

/// Issues and checks tokens. Clones share the keys: [`Auth::reload`] on one (an operator
/// rotated a key or revoked a device) takes effect for every request at once, with no lock
/// on the request path.
#[derive(Clone)]
pub struct Auth {
    keys: Arc<ArcSwap<Keys>>,
    cache_entries: usize,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Keys {
    /// The signature check and parse of `token` under these keys: what the cache saves.
    ///
    /// A JWS in compact form, HS256 only, checked here over `ring`'s HMAC rather than with
    /// `jsonwebtoken::decode` (which still issues the tokens): that parses the header twice and
    /// the claims twice, sets the HMAC key up again and compares base64 strings — a device
    /// request's token check took 4.2 µs with it and takes 2.3 µs with this one (`cargo bench -p
    /// seams --bench auth`, `uncached`), paid by every device's first request after midnight, a
    /// restart or a key change. The rules are the same: three base64url parts without padding,
    /// `alg` HS256 and nothing else (never `none`), the key named by `kid` (the default key
    /// without one), the MAC checked in constant time before the claims are read, `sub`,
    /// `role`, `iat` and `exp` required. Expiry and revocation are checked by the caller, on
    /// hits and misses alike.
    fn decode(&self, token: &str) -> Result<Verified, ApiError> {
        let invalid = |why: String| ApiError::unauthorized(format!("invalid token: {why}"));
        let malformed = || invalid("not a JWT (base64url header.claims.signature)".into());
        let (signed, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header, claims) = signed.split_once('.').ok_or_else(malformed)?;
        let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
        let header: JoseHeader<'_> = serde_json::from_slice(&header).map_err(|e| invalid(format!("header: {e}")))?;
        if header.alg != "HS256" {
            return Err(invalid(format!("algorithm {:?}: only HS256 is accepted", header.alg)));
        }
        let kid = header.kid.as_deref().unwrap_or(DEFAULT_KID);
        let key = self.decoding.get(kid).ok_or_else(|| invalid(format!("unknown or retired key {kid:?}")))?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        hmac::verify(key, signed.as_bytes(), &signature).map_err(|_| invalid("bad signature".into()))?;
        let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|_| malformed())?;
        let claims: Claims = serde_json::from_slice(&claims).map_err(|e| invalid(format!("claims: {e}")))?;
        let zone = match claims.role {
            Role::Device => claims.tz.as_deref().map(DeviceZone::parse).transpose().and_then(|zone| {
                // A plan out of range is as unusable as an unknown zone.
                claims.retention_days.map(check_plan).transpose().map(|_| zone)
            }),
            Role::Viewer => Ok(None),
        };
        Ok(Verified { claims, zone })
    }
}

fn compile(ring: KeyRing, cache_entries: usize) -> Result<Keys, String> {
    ring.check()?;
    let (signing_kid, secret) = ring.keys[0].clone();
    Ok(Keys {
        signing_kid,
        encoding: EncodingKey::from_secret(&secret),
        decoding: ring.keys.iter().map(|(kid, s)| (kid.clone(), hmac::Key::new(hmac::HMAC_SHA256, s))).collect(),
        revoked: ring.revoked.clone(),
        ring,
        tokens: (cache_entries > 0).then(|| Cache::new(cache_entries)),
    })
}

impl Auth {
    /// From one signing secret (at least 32 bytes), as key `DEFAULT_KID`.
    pub fn new(secret: &[u8]) -> Self {
        Self::from_ring(KeyRing::single(secret)).expect("a single key of a checked secret")
    }

    /// From a key ring (see [`KeyRing::check`]).
    pub fn from_ring(ring: KeyRing) -> Result<Self, String> {
        Self::with_token_cache(ring, TOKEN_CACHE_ENTRIES)
    }

    /// From a key ring, keeping at most `cache_entries` verified tokens (the default is
    /// [`TOKEN_CACHE_ENTRIES`]); 0 turns the cache off, every request verifying its token
    /// (to measure what the cache saves).
    pub fn with_token_cache(ring: KeyRing, cache_entries: usize) -> Result<Self, String> {
        Ok(Self { keys: Arc::new(ArcSwap::from_pointee(compile(ring, cache_entries)?)), cache_entries })
    }

    /// Replaces the keys and revocations, if they changed; returns whether they did. A change
    /// also empties the token cache: every token is verified again against the new ring.
    pub fn reload(&self, ring: KeyRing) -> Result<bool, String> {
        if self.keys.load().ring == ring {
            return Ok(false);
        }
        self.keys.store(Arc::new(compile(ring, self.cache_entries)?));
        Ok(true)
    }

    fn issue(&self, sub: String, role: Role, devices: Vec<String>, tz: Option<String>, ttl: Duration) -> String {
        self.issue_claims(Claims { sub, role, devices, iat: 0, exp: 0, tz, scope: None, retention_days: None }, ttl)
    }

    /// Signs `claims` issued now, expiring `ttl` later.
    fn issue_claims(&self, mut claims: Claims, ttl: Duration) -> String {
        claims.iat = chrono::Utc::now().timestamp();
        claims.exp = claims.iat + ttl.as_secs() as i64;
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
        self.device_token_planned(cid, zone, None, ttl)
    }

    /// A token for device `cid` in time zone `zone` with its plan (`retention_days`, checked by
    /// [`check_plan`] by whoever asks: a token out of range is refused when verified).
    pub fn device_token_planned(
        &self,
        cid: &DeviceId,
        zone: Option<DeviceZone>,
        retention_days: Option<u32>,
        ttl: Duration,
    ) -> String {
        let claims = Claims {
            sub: cid.to_string(),
            role: Role::Device,
            devices: Vec::new(),
            iat: 0,
            exp: 0,
            tz: zone.map(|z| z.name().to_owned()),
            scope: None,
            retention_days,
        };
        self.issue_claims(claims, ttl)
    }

    /// A token that may read `devices`.
    pub fn viewer_token(&self, devices: &[DeviceId], ttl: Duration) -> String {
        self.issue("viewer".into(), Role::Viewer, devices.iter().map(ToString::to_string).collect(), None, ttl)
    }

    /// A token that may read and manage `devices` (scope [`MANAGE_SCOPE`]).
    pub fn managing_viewer_token(&self, devices: &[DeviceId], ttl: Duration) -> String {
        let devices = devices.iter().map(ToString::to_string).collect();
        let claims = Claims {
            sub: "viewer".into(),
            role: Role::Viewer,
            devices,
            iat: 0,
            exp: 0,
            tz: None,
            scope: Some(MANAGE_SCOPE.into()),
            retention_days: None,
        };
        self.issue_claims(claims, ttl)
    }

    /// Checks the `Authorization: Bearer …` header: 401 when absent, forged or expired.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        self.verified(headers, chrono::Utc::now().timestamp()).map(|v| v.claims.clone())
    }

    /// [`Auth::verify`] as of epoch second `now`, without copying the claims: from the cache
    /// when this exact token was verified before under the current ring, else verified (and
    /// cached if valid). Expiry and revocation are checked either way, the same way.
    fn verified(&self, headers: &HeaderMap, now: i64) -> Result<Arc<Verified>, ApiError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::unauthorized("authorization must be `Bearer <token>`"))?;
        let token = token.trim();
        let keys = self.keys.load();
        let (verified, hit) = match keys.tokens.as_ref().and_then(|c| c.get(token)) {
            Some(v) => (v, true),
            None => (Arc::new(keys.decode(token)?), false),
        };
        let claims = &verified.claims;
        if claims.exp < now - LEEWAY_S {
            return Err(ApiError::unauthorized("invalid token: expired"));
        }
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
        if let (false, Some(cache)) = (hit, &keys.tokens) {
            cache.insert(token.into(), Arc::clone(&verified));
        }
        Ok(verified)
    }

    /// 401 unless a valid device token (with a known zone, if any); 403 unless it is `cid`'s.
    pub fn device(&self, headers: &HeaderMap, cid: &str) -> Result<Device, ApiError> {
        let verified = self.verified(headers, chrono::Utc::now().timestamp())?;
        let claims = &verified.claims;
        if claims.role != Role::Device {
            return Err(ApiError::forbidden("a viewer token cannot write reports"));
        }
        if claims.sub != cid {
            return Err(ApiError::forbidden(format!("this token may only write as device {}", claims.sub)));
        }
        let zone = verified.zone.clone().map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let cid = DeviceId::parse(cid).map_err(|e| ApiError::invalid(ErrorCode::InvalidDeviceId, e.to_string()))?;
        Ok(Device { cid, zone, retention_days: claims.retention_days })
    }

    /// 401 unless a valid viewer token; 403 unless it names `cid`.
    pub fn viewer(&self, headers: &HeaderMap, cid: &str) -> Result<DeviceId, ApiError> {
        let verified = self.verified(headers, chrono::Utc::now().timestamp())?;
        let claims = &verified.claims;
        if claims.role != Role::Viewer {
            return Err(ApiError::forbidden("a device token cannot read"));
        }
        if !claims.devices.iter().any(|d| d == cid) {
            return Err(ApiError::forbidden(format!("this token may not read device {cid}")));
        }
        DeviceId::parse(cid).map_err(|e| ApiError::invalid(ErrorCode::InvalidDeviceId, e.to_string()))
    }

    /// [`Auth::viewer`], and 403 unless the token may also manage (scope [`MANAGE_SCOPE`]).
    pub fn manager(&self, headers: &HeaderMap, cid: &str) -> Result<DeviceId, ApiError> {
        let cid = self.viewer(headers, cid)?;
        let verified = self.verified(headers, chrono::Utc::now().timestamp())?;
        if !verified.claims.has_scope(MANAGE_SCOPE) {
            return Err(ApiError::forbidden(format!("this token may read device {cid} but not manage it")));
        }
        Ok(cid)
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
        assert_eq!(jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(), Some("k2"));
        assert!(auth.device(&bearer(&old), "cam-1").is_ok());
        assert!(auth.device(&bearer(&new), "cam-1").is_ok());
        // Retire k1: its tokens are refused, k2's are not.
        auth.reload(KeyRing { keys: vec![key("k2", 2)], revoked: HashMap::new() }).unwrap();
        let e = auth.device(&bearer(&old), "cam-1").unwrap_err();
        assert!(e.message.contains("retired"), "{}", e.message);
        assert!(auth.device(&bearer(&new), "cam-1").is_ok());
    }

    #[test]
    fn a_device_token_carries_its_plan_and_one_out_of_range_is_refused() {
        let auth = Auth::new(&[4u8; 32]);
        let cam = DeviceId::parse("cam-1").unwrap();
        let ttl = Duration::from_secs(600);
        let planned = bearer(&auth.device_token_planned(&cam, None, Some(60), ttl));
        assert_eq!(auth.device(&planned, "cam-1").unwrap().retention_days, Some(60));
        assert_eq!(auth.device(&bearer(&auth.device_token(&cam, ttl)), "cam-1").unwrap().retention_days, None);
        for days in [6, 366] {
            let e = auth.device(&bearer(&auth.device_token_planned(&cam, None, Some(days), ttl)), "cam-1").unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
            assert!(e.message.contains("retention_days"), "{}", e.message);
        }
        assert!(check_plan(7).is_ok() && check_plan(365).is_ok() && check_plan(0).is_err());
    }

    #[test]
    fn only_a_managing_viewer_of_the_device_may_manage_it() {
        let auth = Auth::new(&[3u8; 32]);
        let cam = DeviceId::parse("cam-1").unwrap();
        let ttl = Duration::from_secs(600);
        let manager = bearer(&auth.managing_viewer_token(std::slice::from_ref(&cam), ttl));
        assert_eq!(auth.manager(&manager, "cam-1").unwrap(), cam);
        assert_eq!(auth.viewer(&manager, "cam-1").unwrap(), cam, "a manager reads too");
        let forbidden = |r: Result<DeviceId, ApiError>| r.unwrap_err().status == axum::http::StatusCode::FORBIDDEN;
        assert!(forbidden(auth.manager(&manager, "cam-2")), "another camera");
        assert!(
            forbidden(auth.manager(&bearer(&auth.viewer_token(std::slice::from_ref(&cam), ttl)), "cam-1")),
            "read only"
        );
        assert!(forbidden(auth.manager(&bearer(&auth.device_token(&cam, ttl)), "cam-1")), "a device");
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
            scope: None,
            retention_days: None,
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

    fn cached(auth: &Auth, token: &str) -> bool {
        auth.keys.load().tokens.as_ref().unwrap().get(token).is_some()
    }

    fn device_claims(sub: &str, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: sub.into(),
            role: Role::Device,
            devices: vec![],
            exp,
            iat,
            tz: None,
            scope: None,
            retention_days: None,
        }
    }

    fn signed(claims: &Claims, kid: &str, secret: &[u8]) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.into());
        encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn a_token_is_verified_once_then_served_from_the_cache() {
        let auth = Auth::new(&[4u8; 32]);
        let token = auth.device_token(&DeviceId::parse("cam-1").unwrap(), Duration::from_secs(600));
        assert!(!cached(&auth, &token));
        assert_eq!(auth.device(&bearer(&token), "cam-1").unwrap().cid.as_str(), "cam-1");
        assert!(cached(&auth, &token));
        // The path's cid is still checked on every request, cached or not.
        let e = auth.device(&bearer(&token), "cam-2").unwrap_err();
        assert!(e.message.contains("only write as device cam-1"), "{}", e.message);
        assert!(auth.viewer(&bearer(&token), "cam-1").is_err(), "a device token cannot read");
        assert_eq!(auth.keys.load().tokens.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn a_cached_token_is_refused_once_expired() {
        let secret = [5u8; 32];
        let now = chrono::Utc::now().timestamp();
        let auth = Auth::from_ring(KeyRing { keys: vec![key("k1", 5)], revoked: HashMap::new() }).unwrap();
        // Past its exp but within the leeway: accepted, and cached.
        let token = signed(&device_claims("cam-1", now - 600, now - LEEWAY_S + 1), "k1", &secret);
        assert!(auth.device(&bearer(&token), "cam-1").is_ok());
        assert!(cached(&auth, &token));
        // Two seconds later it is past the leeway: the cached entry does not save it.
        let e = auth.verified(&bearer(&token), now + 2).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
        // The same refusal as a token that was never cached.
        let expired = signed(&device_claims("cam-1", now - 600, now - LEEWAY_S - 2), "k1", &secret);
        let fresh = Auth::from_ring(KeyRing { keys: vec![key("k1", 5)], revoked: HashMap::new() }).unwrap();
        let uncached = fresh.device(&bearer(&expired), "cam-1").unwrap_err();
        assert!(!cached(&fresh, &expired), "a refused token is not cached");
        assert_eq!((e.status, &e.message), (uncached.status, &uncached.message));
        assert!(e.message.contains("expired"), "{}", e.message);
    }

    #[test]
    fn a_cached_token_is_refused_once_its_device_is_revoked() {
        let auth = Auth::new(&[3u8; 32]);
        let token = auth.device_token(&DeviceId::parse("cam-a").unwrap(), Duration::from_secs(600));
        assert!(auth.device(&bearer(&token), "cam-a").is_ok());
        assert!(cached(&auth, &token));
        let mut ring = KeyRing::single(&[3u8; 32]);
        ring.revoked.insert("cam-a".into(), chrono::Utc::now().timestamp() + 1);
        assert!(auth.reload(ring).unwrap());
        let e = auth.device(&bearer(&token), "cam-a").unwrap_err();
        assert!(e.message.contains("revoked"), "{}", e.message);
        assert!(!cached(&auth, &token), "a revoked token is not cached again");
    }

    #[test]
    fn a_cached_token_is_refused_once_its_key_is_retired() {
        let cid = DeviceId::parse("cam-1").unwrap();
        let auth = Auth::from_ring(KeyRing { keys: vec![key("k1", 1)], revoked: HashMap::new() }).unwrap();
        let old = auth.device_token(&cid, Duration::from_secs(600));
        assert!(auth.device(&bearer(&old), "cam-1").is_ok());
        assert!(cached(&auth, &old));
        // An unchanged ring keeps the cache; a changed one starts a new, empty one.
        assert!(!auth.reload(KeyRing { keys: vec![key("k1", 1)], revoked: HashMap::new() }).unwrap());
        assert!(cached(&auth, &old));
        let stale = auth.keys.load_full();
        assert!(auth.reload(KeyRing { keys: vec![key("k2", 2)], revoked: HashMap::new() }).unwrap());
        assert!(!cached(&auth, &old));
        // A request that loaded the old ring before the swap caches into the old ring only.
        let stale = stale.tokens.as_ref().unwrap();
        stale.insert(old.as_str().into(), stale.get(old.as_str()).unwrap());
        let e = auth.device(&bearer(&old), "cam-1").unwrap_err();
        assert!(e.message.contains("retired"), "{}", e.message);
        assert!(!cached(&auth, &old));
    }

    #[test]
    fn a_tampered_token_never_gets_the_genuine_ones_cache_entry() {
        let auth = Auth::from_ring(KeyRing { keys: vec![key("k1", 6)], revoked: HashMap::new() }).unwrap();
        let token = auth.device_token(&DeviceId::parse("cam-1").unwrap(), Duration::from_secs(600));
        assert!(auth.device(&bearer(&token), "cam-1").is_ok());
        let parts: Vec<&str> = token.split('.').collect();
        // Another device's claims under the genuine header and signature.
        let now = chrono::Utc::now().timestamp();
        let other = signed(&device_claims("cam-2", now, now + 600), "k1", &[9u8; 32]);
        let swapped_claims = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
        // A flipped signature character (not the last one, whose low bits are padding).
        let mut sig = parts[2].to_owned().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        let flipped_sig = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap());
        // The genuine token with something appended.
        let appended = format!("{token}x");
        for forged in [swapped_claims, flipped_sig, appended] {
            assert!(auth.verify(&bearer(&forged)).is_err(), "{forged}");
            assert!(auth.device(&bearer(&forged), "cam-2").is_err(), "{forged}");
            assert!(!cached(&auth, &forged));
        }
        assert!(auth.device(&bearer(&token), "cam-1").is_ok());
        assert_eq!(auth.keys.load().tokens.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let capacity = 64;
        let auth = Auth::with_token_cache(KeyRing::single(&[8u8; 32]), capacity).unwrap();
        let tokens: Vec<(String, String)> = (0..1000)
            .map(|i| {
                let cid = format!("cam-{i}");
                (auth.device_token(&DeviceId::parse(&cid).unwrap(), Duration::from_secs(600)), cid)
            })
            .collect();
        for (token, cid) in &tokens {
            assert!(auth.device(&bearer(token), cid).is_ok());
        }
        let keys = auth.keys.load();
        let cache = keys.tokens.as_ref().unwrap();
        assert!(cache.len() <= capacity, "{} entries", cache.len());
        assert!(!cache.is_empty());
        // Evicted tokens are verified again, not refused.
        assert!(tokens.iter().all(|(token, cid)| auth.device(&bearer(token), cid).is_ok()));
        assert!(auth.keys.load().tokens.as_ref().unwrap().len() <= capacity);
        // The real bound: TOKEN_CACHE_ENTRIES, rounded up to a whole number per shard.
        let real = Auth::new(&[8u8; 32]).keys.load_full();
        let real = real.tokens.as_ref().unwrap();
        let total = real.capacity() as usize;
        assert!((TOKEN_CACHE_ENTRIES..TOKEN_CACHE_ENTRIES + real.num_shards()).contains(&total), "{total}");
        // Off: nothing kept, every token verified.
        let off = Auth::with_token_cache(KeyRing::single(&[8u8; 32]), 0).unwrap();
        assert!(tokens.iter().take(10).all(|(token, cid)| off.device(&bearer(token), cid).is_ok()));
        assert!(off.keys.load().tokens.is_none());
    }

    /// The hand-written check refuses every token jsonwebtoken would and accepts what it
    /// issues: forged algorithms (`none`, HS512, RS256), a MAC from another key, any changed
    /// part, missing parts and claims, padding, stray characters; and passes the token's
    /// claims through unchanged.
    #[test]
    fn only_genuine_hs256_tokens_verify() {
        let secret = [7u8; 32];
        let auth = Auth::with_token_cache(KeyRing::single(&secret), 0).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims { tz: Some("Europe/Paris".into()), ..device_claims("cam-a", now, now + 600) };
        let good = signed(&claims, DEFAULT_KID, &secret);
        let verified = auth.verified(&bearer(&good), now).unwrap();
        assert_eq!(serde_json::to_value(&verified.claims).unwrap(), serde_json::to_value(&claims).unwrap());
        assert!(verified.zone.as_ref().is_ok_and(Option::is_some));

        let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let mac = |signed: &str, key: &[u8]| {
            URL_SAFE_NO_PAD.encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), signed.as_bytes()))
        };
        let body = b64(&serde_json::to_value(&claims).unwrap());
        // Signed correctly with the right key, but a header naming another algorithm.
        let with_header = |header: serde_json::Value| {
            let signed = format!("{}.{body}", b64(&header));
            let sig = mac(&signed, &secret);
            format!("{signed}.{sig}")
        };
        let (parts, sig) = good.rsplit_once('.').unwrap();
        let (header, _) = parts.split_once('.').unwrap();
        let tampered_claims = {
            let other = b64(&serde_json::to_value(device_claims("cam-a", now, now + 999_999)).unwrap());
            format!("{header}.{other}.{sig}")
        };
        let no_exp = {
            let mut v = serde_json::to_value(&claims).unwrap();
            v.as_object_mut().unwrap().remove("exp");
            let signed = format!("{header}.{}", b64(&v));
            let sig = mac(&signed, &secret);
            format!("{signed}.{sig}")
        };
        let forged = [
            with_header(serde_json::json!({"alg": "none", "typ": "JWT"})),
            with_header(serde_json::json!({"alg": "HS512", "typ": "JWT"})),
            with_header(serde_json::json!({"alg": "RS256"})),
            with_header(serde_json::json!({"typ": "JWT"})),
            format!("{parts}."),
            format!("{parts}.{}", mac(parts, &[8u8; 32])),
            signed(&claims, DEFAULT_KID, &[8u8; 32]),
            signed(&claims, "other", &secret),
            tampered_claims,
            no_exp,
            parts.to_owned(),
            format!("{good}="),
            format!("{good}.x"),
            format!("{header}..{sig}"),
            good.replacen('.', "=.", 1),
            good.replace('-', "+"),
            String::new(),
        ];
        for (i, token) in forged.iter().enumerate() {
            if token == &good {
                continue; // `replace` found nothing to change
            }
            let e = auth
                .verified(&bearer(token), now)
                .err()
                .unwrap_or_else(|| panic!("forged token {i} verified: {token}"));
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{i}: {}", e.message);
        }
    }

    #[test]
    fn bad_rings_are_refused() {
        for keys in [vec![], vec![key("k 1", 1)], vec![key("k1", 1), key("k1", 2)], vec![("k1".into(), vec![1; 31])]] {
            assert!(KeyRing { keys, revoked: HashMap::new() }.check().is_err());
        }
    }
}
