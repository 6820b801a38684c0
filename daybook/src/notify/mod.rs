//! Notifications: webhook subscriptions fed from the log (docs/notifications.md).
//!
//! * [`seal`]: the notify key that seals signing secrets.
//! * [`changes`]: putting a subscription change on the log from the command line.
//! * [`deliver`]: the notifier (a consumer group per subscription, at-least-once).
//! * [`wire`]: Standard Webhooks: ids, signatures, the body.
//! * [`safety`]: what the notifier may connect to (SSRF).

pub mod changes;
pub mod deliver;
pub mod safety;
pub mod seal;
pub mod wire;

use schemas::SubscriptionId;

/// The consumer group a subscription reads the log as: its own, independent of the
/// projector's and of every other subscription's.
pub fn group_of(id: &SubscriptionId) -> String {
    format!("daybook-notify-{id}")
}
