//! The narrowest columns any store keeps a report's numbers in, and the conversions into them
//! (see `rows`' module docs: a report validation accepts is never refused by a store).

/// A value no store can hold: the report is refused for good, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value} does not fit a {column} column")]
pub struct Unstorable {
    /// The report's field.
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// The narrowest column type that holds it in some store (`int`: 32-bit signed).
    pub column: &'static str,
}

/// A value of a 32-bit signed column (CQL `int`): mapping index, width, height, audio sample
/// rate, durations.
pub fn int_column(field: &'static str, value: u32) -> Result<i32, Unstorable> {
    i32::try_from(value).map_err(|_| Unstorable { field, value: u64::from(value), column: "int" })
}

/// A value of a 64-bit signed column (CQL `bigint`, SQLite `INTEGER`): sizes, offsets,
/// keyframes.
pub fn bigint_column(field: &'static str, value: u64) -> Result<i64, Unstorable> {
    i64::try_from(value).map_err(|_| Unstorable { field, value, column: "bigint" })
}
