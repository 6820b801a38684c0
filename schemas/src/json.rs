//! The topic's value as JSON: what `daybook tail` prints for a record (without the record's
//! partition and offset, which belong to the log, not to the value), what the golden vectors
//! in `schemas/testdata/` hold, and what `clients/python/daybook_envelope.py` returns.
//!
//! The object is flat: `cid`, `type` (the report kind, as in the `daybook.type` header),
//! `schema` (the envelope's version), `received_at`, then every field of the report under its
//! serde name, and last `retention_days` (schema version 5; `null` for older records). Field names come from the report types' serde derive, so renaming a field
//! renames its JSON key here, in `daybook tail` and in the golden vectors alike. Instants are
//! RFC 3339 strings in UTC with milliseconds (see [`crate::Timestamp`]), days `YYYY-MM-DD`.

use serde_json::{Map, Value};

use crate::envelope::{DecodeError, Envelope};

/// The keys every line carries before the report's own fields; a report field of the same name
/// would be shadowed, so none may use one.
pub const ENVELOPE_KEYS: [&str; 4] = ["cid", "type", "schema", "received_at"];

/// `env`, read from a value of schema version `schema`, as one flat JSON object.
pub fn envelope_json(schema: u16, env: &Envelope) -> Map<String, Value> {
    let report = serde_json::to_value(&env.report).expect("reports serialize to json");
    // Externally tagged: `{"EventStarted": {...}}`; the kind goes to "type" instead.
    let fields = match report {
        Value::Object(tagged) => tagged.into_iter().next().map(|(_, inner)| inner),
        _ => None,
    };
    let mut obj = Map::new();
    // A subscription change has no device: `cid` is null.
    obj.insert("cid".into(), env.report.cid().map_or(Value::Null, |c| c.as_str().into()));
    obj.insert("type".into(), env.report.kind().as_str().into());
    obj.insert("schema".into(), schema.into());
    obj.insert("received_at".into(), serde_json::to_value(env.received_at).expect("timestamps serialize to json"));
    if let Some(Value::Object(fields)) = fields {
        for (k, v) in fields {
            obj.entry(k).or_insert(v);
        }
    }
    // Version 5: the report's retention, `null` when it carries none (older versions). A
    // `plan_set`'s own field of that name is the same figure (ingest stamps it on the envelope).
    obj.entry("retention_days").or_insert(env.retention_days.map_or(Value::Null, Value::from));
    obj
}

/// Decodes a topic value straight to its JSON object.
pub fn decode_json(bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let env = Envelope::decode(bytes)?;
    // decode succeeded, so the prefix is a known version
    let schema = Envelope::version_of(bytes).expect("a decoded envelope has a version prefix");
    Ok(envelope_json(schema, &env))
}
