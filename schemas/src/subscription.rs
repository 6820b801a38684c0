//! Notification subscriptions as reports on the log (schema version 3, docs/topic.md and
//! docs/notifications.md): a change of a subscription is a report like any other, so every
//! store projects it, every notifier reads it, and backups, restores and rebuilds carry it.
//!
//! A [`SubscriptionSet`] holds the whole subscription as of the change (a later one replaces
//! it whole: no merge rules), a [`SubscriptionDeleted`] ends it. Signing secrets travel only
//! sealed ([`Sealed`]: encrypted with the deployment's notify key, never in clear).

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{DeviceId, EventType, SubscriptionId};
use crate::kind::ReportKind;
use crate::time::Timestamp;

/// Longest receiver URL.
pub const MAX_URL_LEN: usize = 2048;
/// Most entries in one filter list (devices, prefixes, types).
pub const MAX_FILTER_ITEMS: usize = 1024;
/// Signing secrets one subscription holds at once: the current one and, during a rotation,
/// the previous one (receivers verify with either).
pub const MAX_SECRETS: usize = 2;
/// Largest sealed secret (nonce, ciphertext, tag of a 64-byte secret, with room).
pub const MAX_SEALED_BYTES: usize = 256;

/// A signing secret encrypted with the deployment's notify key (`daybook::notify::seal`):
/// opaque bytes on the wire; base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            // bincode: a varint length, then the bytes (the same bytes as a `Vec<u8>`).
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = if d.is_human_readable() {
            let s = String::deserialize(d)?;
            base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)?
        } else {
            Vec::<u8>::deserialize(d)?
        };
        if bytes.len() > MAX_SEALED_BYTES {
            return Err(serde::de::Error::custom(format!("a sealed secret is at most {MAX_SEALED_BYTES} bytes")));
        }
        Ok(Self(bytes))
    }
}

/// A subscription as of one change: where to send, how to sign, what to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionSet {
    /// Which subscription.
    pub subscription_id: SubscriptionId,
    /// The receiver (`https://…`; `http://` only where the deployment allows it).
    pub url: String,
    /// Signing secrets, sealed, the current one first; two during a rotation.
    pub secrets: Vec<Sealed>,
    /// Devices sent, by id (with `device_prefixes`: a report is sent if its device is listed
    /// or starts with a prefix; both empty: every device).
    pub devices: Vec<DeviceId>,
    /// Devices sent, by id prefix.
    pub device_prefixes: Vec<DeviceId>,
    /// Report kinds sent (`event_started`, `event_ended`, `segment_reported`,
    /// `digest_reported`); empty: all four.
    pub kinds: Vec<ReportKind>,
    /// Event types sent (an event report of another type is not; a segment is sent if it
    /// maps an event of one of them; a digest always passes); empty: all.
    pub event_types: Vec<EventType>,
    /// Per device and event type, at most one event start per this many milliseconds (0:
    /// none): the others are counted, not sent.
    pub cooldown_ms: u64,
    /// Reports received longer ago than this when their turn comes are counted, not sent.
    pub max_age_ms: Option<u64>,
    /// A paused subscription keeps its position and sends nothing until resumed.
    pub paused: bool,
    /// When the subscription was created (kept by every later change).
    pub created_at: Timestamp,
}

/// Bytes carried opaquely (a log record's value inside a dead letter): a varint length and the
/// bytes on the wire; base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Ok(Self(base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)?))
        } else {
            Ok(Self(Vec::<u8>::deserialize(d)?))
        }
    }
}

/// A report the notifier gave up on: a permanent refusal (a 4xx other than 408, 409, 425,
/// 429), or failures past the retry window. Kept (in the store's dead letters, and on the log)
/// until replayed or purged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDeadLettered {
    /// Which subscription.
    pub subscription_id: SubscriptionId,
    /// The delivery's `webhook-id`.
    pub webhook_id: String,
    /// Why (`status 404`, `timeout`, …, after how long).
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// The schema version of `record`.
    pub record_schema: u16,
    /// The report's log record value (its envelope), as it was on the log.
    pub record: Blob,
}

/// A dead letter to deliver again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayedLetter {
    /// The delivery's `webhook-id` (unchanged: a receiver that took it after all de-duplicates).
    pub webhook_id: String,
    /// The schema version of `record`.
    pub record_schema: u16,
    /// The report's log record value.
    pub record: Blob,
}

/// Dead letters leave the dead letters: `purged` are dropped, `replayed` are delivered again
/// (carried here whole, so the notifier needs nothing else to send them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLettersReleased {
    /// Which subscription.
    pub subscription_id: SubscriptionId,
    /// Dropped, by `webhook-id`.
    pub purged: Vec<String>,
    /// Sent again, in this order.
    pub replayed: Vec<ReplayedLetter>,
}

/// A subscription ended: its notifier stops and its position is forgotten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDeleted {
    /// Which subscription.
    pub subscription_id: SubscriptionId,
}

impl SubscriptionSet {
    /// Checks what decoding cannot: the URL's length and scheme, the list sizes, the secrets,
    /// and that `kinds` names device reports only.
    pub fn check(&self) -> Result<(), String> {
        if self.url.is_empty() || self.url.len() > MAX_URL_LEN {
            return Err(format!("the receiver URL must be 1 to {MAX_URL_LEN} bytes"));
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err("the receiver URL must be http:// or https://".into());
        }
        if self.secrets.is_empty() || self.secrets.len() > MAX_SECRETS {
            return Err(format!("a subscription holds 1 to {MAX_SECRETS} secrets"));
        }
        for (what, n) in [
            ("devices", self.devices.len()),
            ("device prefixes", self.device_prefixes.len()),
            ("kinds", self.kinds.len()),
            ("event types", self.event_types.len()),
        ] {
            if n > MAX_FILTER_ITEMS {
                return Err(format!("at most {MAX_FILTER_ITEMS} {what}"));
            }
        }
        // The reports about a device that this release sends: a device's, its owner's deletions
        // and erasures, and its plan changes (docs/notifications.md).
        let sent = |k: ReportKind| {
            k.is_device_report()
                || matches!(k, ReportKind::EventDeleted | ReportKind::DeviceErased | ReportKind::PlanSet)
        };
        if let Some(k) = self.kinds.iter().find(|k| !sent(**k)) {
            return Err(format!("{} is not a report about a device that is sent", k.as_str()));
        }
        Ok(())
    }
}
