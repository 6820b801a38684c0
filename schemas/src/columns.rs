//! The narrowest columns any store keeps a report's numbers in, and the conversions into them
//! (see `rows`' module docs: a report validation accepts is never refused by a store).

/// A report no store of this build can hold: refused for good, never retried (a projector
/// sets it aside in quarantine, where `daybook quarantine replay` can take it again later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unstorable {
    /// A value no column holds.
    #[error("{field} {value} does not fit a {column} column")]
    Column {
        /// The report's field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The narrowest column type that holds it in some store (`int`: 32-bit signed).
        column: &'static str,
    },
    /// A kind of report the schema defines but no store of this build projects yet
    /// (docs/topic.md, schema version 4).
    #[error("{kind} reports are not projected by this build")]
    NotProjected {
        /// Its `daybook.type`.
        kind: &'static str,
    },
}

/// A value of a 32-bit signed column (CQL `int`): mapping index, width, height, audio sample
/// rate, durations.
pub fn int_column(field: &'static str, value: u32) -> Result<i32, Unstorable> {
    i32::try_from(value).map_err(|_| Unstorable::Column { field, value: u64::from(value), column: "int" })
}

/// A value of a 64-bit signed column (CQL `bigint`, SQLite `INTEGER`): sizes, offsets,
/// keyframes.
pub fn bigint_column(field: &'static str, value: u64) -> Result<i64, Unstorable> {
    i64::try_from(value).map_err(|_| Unstorable::Column { field, value, column: "bigint" })
}
