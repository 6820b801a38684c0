//! Notifications: webhook subscriptions fed from the log (docs/notifications.md).
//!
//! * [`seal`]: the notify key that seals signing secrets.
//! * [`changes`]: putting a subscription change on the log from the command line.

pub mod changes;
pub mod seal;

use schemas::SubscriptionId;

/// The consumer group a subscription reads the log as: its own, independent of the
/// projector's and of every other subscription's.
pub fn group_of(id: &SubscriptionId) -> String {
    format!("daybook-notify-{id}")
}
