//! Bearer tokens: HS256 JWTs. A device token names one device and may write only as it; a
//! viewer token names the devices it may read.

use std::time::Duration;

use axum::http::HeaderMap;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
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

/// Issues and checks tokens with one shared secret.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// From the signing secret (at least 32 bytes).
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    fn issue(&self, sub: String, role: Role, devices: Vec<String>, tz: Option<String>, ttl: Duration) -> String {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims { sub, role, devices, iat, exp: iat + ttl.as_secs() as i64, tz };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
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
        decode::<Claims>(token.trim(), &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))
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
