//! An offline CQL checker: every statement the store prepares is analyzed against
//! `infra/cql/schema.cql` as the server would at PREPARE (columns, key restrictions, bind
//! markers, result columns), then the exact value and row types the code binds and reads
//! are type-checked against that analysis with the driver's own serialization checks. A
//! schema or statement change that does not match the code fails here, without a cluster.

use std::collections::HashMap;

use ::scylla::deserialize::row::DeserializeRow;
use ::scylla::frame::response::result::{CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec};
use ::scylla::serialize::row::{RowSerializationContext, SerializeRow};
use ::scylla::serialize::writers::RowWriter;
use schemas::{DayOffset, EndStatus, Report, Timestamp};

use super::fixtures::*;
use super::plan::{count_chunks, count_row, KeptSet, WritePlan};
use super::schema::{schema_statements, Cql};
use super::views::{
    ClusteringKey, CountRow, DayKey, DayTypeKey, DeadLetterRow, DeletedRecountRow, DeletedRow, DeviceRow, DigestRow,
    EventKey, EventReadRow, EventWholeRow, KeepRow, KeepValues, MappingRow, PurgeRow, QuarantineRow, QuarantineValues,
    RecountKey, RecountRow, SegmentEventsRow, SegmentRow, SegmentWholeRow, SubscriptionRow, UsageRow,
};

#[test]
fn schema_statements_are_complete_and_idempotent() {
    let stmts = schema_statements("ks_x", 3);
    assert_eq!(stmts.len(), 18, "{stmts:#?}");
    assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_x"));
    assert!(stmts[0].contains("'replication_factor': 3"));
    for s in &stmts[1..] {
        assert!(s.starts_with("CREATE TABLE IF NOT EXISTS ks_x."), "{s}");
        // Day-partitioned tables expire by whole time windows; `devices` has one row per device.
        if s.contains(".subscriptions (")
            || s.contains(".dead_letters (")
            || s.contains(".erasures (")
            || s.contains(".kept (")
            || s.contains(".kept_devices (")
            || s.contains(".exports (")
            || s.contains(".pending_exports (")
        {
            // Subscriptions, erasure marks, keeps and exports are not day data: they live until
            // deleted or replaced, or for their own TTL.
            assert!(s.contains("default_time_to_live = 0"), "{s}");
            continue;
        }
        // `devices` is one row per device, `purges` one small partition of rows with their TTL.
        if !s.contains(".devices (") && !s.contains(".purges (") {
            assert!(s.contains("'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1"), "{s}");
        }
        assert!(s.contains("default_time_to_live = 2592000"), "{s}");
    }
    for s in &stmts {
        assert!(!s.contains("${") && !s.contains("--") && !s.to_ascii_lowercase().contains("counter"), "{s}");
    }
}

/// A table of the schema file: column types, partition key, clustering columns.
#[derive(Debug)]
struct Table {
    columns: HashMap<String, ColumnType<'static>>,
    partition: Vec<String>,
    clustering: Vec<String>,
}

fn cql_type(t: &str) -> ColumnType<'static> {
    let native = |t: &str| match t {
        "text" => NativeType::Text,
        "int" => NativeType::Int,
        "bigint" => NativeType::BigInt,
        "boolean" => NativeType::Boolean,
        "double" => NativeType::Double,
        "blob" => NativeType::Blob,
        other => panic!("type {other} is not expected in this schema"),
    };
    if let Some(inner) = t.strip_prefix("frozen<list<").and_then(|r| r.strip_suffix(">>")) {
        // Bind markers and result columns report collections as not frozen.
        return ColumnType::Collection {
            frozen: false,
            typ: CollectionType::List(Box::new(ColumnType::Native(native(inner)))),
        };
    }
    ColumnType::Native(native(t))
}

fn parse_schema(ks: &str) -> HashMap<String, Table> {
    let mut tables = HashMap::new();
    for stmt in schema_statements(ks, 1).iter().filter(|s| s.starts_with("CREATE TABLE")) {
        let name = stmt[format!("CREATE TABLE IF NOT EXISTS {ks}.").len()..].split_whitespace().next().unwrap();
        let body = &stmt[stmt.find('(').unwrap() + 1..stmt.rfind(") WITH").expect("WITH options")];
        let mut columns = HashMap::new();
        let mut partition = Vec::new();
        let mut clustering = Vec::new();
        for line in body.lines().map(|l| l.trim().trim_end_matches(',')).filter(|l| !l.is_empty()) {
            if let Some(pk) = line.strip_prefix("PRIMARY KEY (") {
                let pk = pk.strip_suffix(')').unwrap();
                let pk_end = pk.find(')').unwrap();
                partition = pk[1..pk_end].split(',').map(|c| c.trim().to_owned()).collect();
                clustering =
                    pk[pk_end + 1..].split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect();
            } else {
                let (col, typ) = line.split_once(char::is_whitespace).unwrap();
                columns.insert(col.to_owned(), cql_type(typ.trim()));
            }
        }
        for key in partition.iter().chain(&clustering) {
            assert!(columns.contains_key(key), "{name}: key column {key} is not defined");
        }
        if name == "devices" {
            assert_eq!(partition, ["cid"], "{name}: one row per device");
        } else if name == "kept" || name == "exports" {
            assert_eq!(partition, ["cid"], "{name}: one partition per device");
        } else if name == "quarantine" {
            assert_eq!(partition, ["day"], "{name}: one partition per day records were set aside");
        } else if ["subscriptions", "purges", "erasures", "kept_devices", "pending_exports"].contains(&name) {
            assert_eq!(partition, ["bucket"], "{name}: one partition holds every subscription");
        } else if name == "dead_letters" {
            assert_eq!(partition, ["subscription_id"], "{name}: one partition per subscription");
        } else {
            assert_eq!(partition, ["cid", "day"], "{name}: every partition is a device's day");
        }
        tables.insert(name.to_owned(), Table { columns, partition, clustering });
    }
    tables
}

/// What a statement binds and returns, derived from its text and the schema, as the
/// server would report it at PREPARE.
struct Prepared {
    binds: Vec<ColumnSpec<'static>>,
    results: Vec<ColumnSpec<'static>>,
}

fn analyze(ks: &str, tables: &HashMap<String, Table>, cql: &str) -> Prepared {
    let spec = |table: &str, name: &str, typ: ColumnType<'static>| {
        ColumnSpec::owned(name.to_owned(), typ, TableSpec::owned(ks.to_owned(), table.to_owned()))
    };
    let column = |table: &str, name: &str| {
        let t = &tables[table];
        let typ = t.columns.get(name).unwrap_or_else(|| panic!("{cql}: no column {name} in {table}")).clone();
        spec(table, name, typ)
    };
    let markers = cql.matches('?').count();
    if let Some(rest) = cql.strip_prefix(&format!("INSERT INTO {ks}.")) {
        let (table, rest) = rest.split_once(" (").unwrap();
        let (cols, rest) = rest.split_once(") VALUES (").unwrap();
        let (values, rest) = rest.split_once(')').unwrap();
        // Every write carries its trigger-time TTL and a timestamp: the report's own
        // (`rows::write_stamp`), or for the device offset its start's filing instant.
        let stamped = match rest {
            " USING TTL ? AND TIMESTAMP ?" => true,
            " USING TTL ?" if table == "quarantine" => false,
            _ => panic!("{cql}: every write carries its trigger-time TTL and its report's timestamp"),
        };
        let cols: Vec<&str> = cols.split(',').map(str::trim).collect();
        assert_eq!(values.split(',').map(str::trim).collect::<Vec<_>>(), vec!["?"; cols.len()], "{cql}");
        let t = &tables[table];
        for key in t.partition.iter().chain(&t.clustering) {
            assert!(cols.contains(&key.as_str()), "{cql}: primary key column {key} is not bound");
        }
        let mut binds: Vec<_> = cols.iter().map(|c| column(table, c)).collect();
        binds.push(spec(table, "[ttl]", ColumnType::Native(NativeType::Int)));
        if stamped {
            binds.push(spec(table, "[timestamp]", ColumnType::Native(NativeType::BigInt)));
        }
        assert_eq!(binds.len(), markers, "{cql}");
        return Prepared { binds, results: Vec::new() };
    }
    // A DELETE restricts like a SELECT (the whole primary key) and returns nothing; one at a
    // timestamp (an erasure's) may delete whole partitions, its timestamp bound first.
    let (select, rest, stamped_delete) = match cql.strip_prefix(&format!("DELETE FROM {ks}.")) {
        Some(rest) => match rest.split_once(" USING TIMESTAMP ?") {
            Some((table, conditions)) => ("", format!("{table}{conditions}"), true),
            None => ("", rest.to_owned(), false),
        },
        None => {
            let rest = cql.strip_prefix("SELECT ").unwrap_or_else(|| panic!("unexpected statement {cql}"));
            let (select, rest) = rest.split_once(&format!(" FROM {ks}.")).unwrap();
            (select, rest.to_owned(), false)
        }
    };
    let Some((table, rest)) = rest.split_once(" WHERE ") else {
        // The one unrestricted read: the paged scan of the usage registers for the deployment's
        // total (a metric's, never a request's).
        assert_eq!(rest, "usage_counts", "{cql}: only the usage total scans a table");
        let results = select.split(',').map(|c| column(&rest, c.trim())).collect();
        return Prepared { binds: Vec::new(), results };
    };
    // A bounded read binds its row limit last (an `int`).
    let (rest, limited) = match rest.strip_suffix(" LIMIT ?") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (conditions, filtering) = match rest.strip_suffix(" ALLOW FILTERING") {
        Some(c) => (c, true),
        None => (rest, false),
    };
    let t = &tables[table];
    let mut binds = Vec::new();
    if stamped_delete {
        binds.push(spec(table, "[timestamp]", ColumnType::Native(NativeType::BigInt)));
    }
    let mut restricted = Vec::new();
    let mut ranged = Vec::new();
    for cond in conditions.split(" AND ") {
        let (col, op, marker) = [" >= ", " <= ", " > ", " < ", " = "]
            .iter()
            .find_map(|op| cond.split_once(op).map(|(c, m)| (c, *op, m)))
            .unwrap_or_else(|| panic!("{cql}: {cond:?} is not `col = ?` or a range `col >= ?`"));
        assert_eq!(marker, "?", "{cql}: every restriction is a bound value");
        binds.push(column(table, col));
        if op == " = " {
            assert!(ranged.is_empty(), "{cql}: equalities come before the range");
            restricted.push(col);
        } else {
            ranged.push(col);
        }
    }
    // Token- and shard-aware: the whole partition key is bound, and first.
    let pk = t.partition.len();
    assert_eq!(restricted[..pk], t.partition.iter().map(String::as_str).collect::<Vec<_>>()[..], "{cql}");
    let rest_keys = &restricted[pk..];
    if select.is_empty() && !stamped_delete {
        assert_eq!(rest_keys, t.clustering.iter().map(String::as_str).collect::<Vec<_>>(), "{cql}: deletes one row");
    }
    let clustering_prefix = rest_keys.iter().zip(&t.clustering).take_while(|(a, b)| **a == b.as_str()).count();
    let needs_filtering = clustering_prefix < rest_keys.len();
    assert_eq!(filtering, needs_filtering, "{cql}: ALLOW FILTERING iff a non-key column is restricted");
    if filtering {
        assert!(rest_keys[clustering_prefix..].iter().all(|c| !t.clustering.iter().any(|k| k == c)), "{cql}");
    }
    if !ranged.is_empty() {
        // A slice: the clustering column right after an equality-restricted prefix.
        assert!(!select.is_empty() && !filtering && clustering_prefix == rest_keys.len(), "{cql}");
        let next = t.clustering.get(clustering_prefix).map(String::as_str);
        assert!(ranged.iter().all(|c| Some(*c) == next), "{cql}: a range restricts the next clustering column");
    }
    if limited {
        assert!(!select.is_empty(), "{cql}: only a read is limited");
        binds.push(spec(table, "[limit]", ColumnType::Native(NativeType::Int)));
    }
    assert_eq!(binds.len(), markers, "{cql}");
    let results = if select.is_empty() {
        Vec::new()
    } else {
        select
            .split(',')
            .map(str::trim)
            .map(|c| {
                if c == "COUNT(*)" {
                    spec(table, "count", ColumnType::Native(NativeType::BigInt))
                } else if let Some(inner) = c.strip_prefix("MAX(").and_then(|r| r.strip_suffix(')')) {
                    let typ = column(table, inner).typ().clone();
                    spec(table, &format!("system.max({inner})"), typ)
                } else {
                    column(table, c)
                }
            })
            .collect()
    };
    Prepared { binds, results }
}

fn binds_ok(p: &Prepared, values: &impl SerializeRow) {
    let ctx = RowSerializationContext::from_specs(&p.binds);
    let mut buf = Vec::new();
    let mut writer = RowWriter::new(&mut buf);
    values.serialize(&ctx, &mut writer).unwrap_or_else(|e| panic!("binding {:?}: {e}", p.binds));
    assert_eq!(writer.value_count(), p.binds.len());
}

fn results_ok<R: for<'f, 'm> DeserializeRow<'f, 'm>>(p: &Prepared) {
    R::type_check(&p.results).unwrap_or_else(|e| panic!("reading {:?}: {e}", p.results));
}

#[test]
fn every_statement_matches_the_schema_with_the_types_the_code_binds_and_reads() {
    let ks = "daybook_check";
    let tables = parse_schema(ks);
    assert_eq!(tables.len(), 17);
    let cql = Cql::new(ks);
    let a = |s: &str| analyze(ks, &tables, s);

    // Writes: the values the plan produces for a batch of every report type.
    let now = Timestamp::now();
    let (id, st) = start("cam-c", "motion", now.plus_millis(-1000));
    let mut seg = segment("cam-c", "seg-c", now.plus_millis(-500), &[(&id, 0)]);
    if let Report::SegmentReported(s) = &mut seg.report {
        s.media.audio_sample_rate = Some(16_000);
    }
    let batch =
        [st, end(&id, 10, EndStatus::Complete), seg, digest("cam-c", DayOffset::default().day_of(now).unwrap(), "dg")];
    let plan = WritePlan::build(&batch, &policy(), now, &KeptSet::new()).unwrap();
    binds_ok(&a(&cql.insert_event), &plan.event_chunks()[0][0]);
    binds_ok(&a(&cql.insert_segment), &plan.segment_chunks()[0][0]);
    binds_ok(&a(&cql.insert_mapping), &plan.mapping_chunks()[0][0]);
    binds_ok(&a(&cql.insert_digest), &plan.digest_chunks()[0][0]);
    binds_ok(&a(&cql.insert_device), &plan.device_writes()[0][0]);
    binds_ok(&a(&cql.device), &("cam-c",));
    results_ok::<DeviceRow>(&a(&cql.device));
    // Unset values are accepted wherever the plan leaves a column alone.
    let (_, lone) = start("cam-c", "motion", now);
    binds_ok(
        &a(&cql.insert_event),
        &WritePlan::build(&[lone], &policy(), now, &KeptSet::new()).unwrap().event_chunks()[0][0],
    );

    // Reads: the key tuples and row types the store uses.
    let day_key_values: DayKey<'_> = ("cam-c", 20261122);
    let type_key: DayTypeKey<'_> = ("cam-c", 20261122, "motion");
    let event_key: EventKey<'_> = ("cam-c", 20261122, 1, "id");
    let clustering_key: ClusteringKey<'_> = ("cam-c", 20261122, "x");
    for (stmt, key) in
        [(&cql.day_counts, &day_key_values), (&cql.page, &day_key_values), (&cql.digest, &day_key_values)]
    {
        binds_ok(&a(stmt), key);
    }
    binds_ok(&a(&cql.page_type), &type_key);
    binds_ok(&a(&cql.event), &event_key);
    binds_ok(&a(&cql.mappings), &clustering_key);
    binds_ok(&a(&cql.segment), &clustering_key);
    results_ok::<CountRow>(&a(&cql.day_counts));
    // The counts: the recount's slice, and the row it writes for a bucket the plan touched.
    let recount_key: RecountKey<'_> = ("cam-c", 20261122, 0, 3_600_000);
    binds_ok(&a(&cql.recount), &recount_key);
    results_ok::<RecountRow>(&a(&cql.recount));
    let bucket = plan.count_buckets()[0].clone();
    let counted = count_row(&bucket, 3, Some(now.millis()), policy().retention_days, now).expect("a live count");
    binds_ok(&a(&cql.insert_count), &count_chunks(vec![counted])[0][0]);
    results_ok::<EventReadRow>(&a(&cql.page));
    results_ok::<EventReadRow>(&a(&cql.page_type));
    results_ok::<EventReadRow>(&a(&cql.event));
    results_ok::<MappingRow>(&a(&cql.mappings));
    results_ok::<SegmentRow>(&a(&cql.segment));
    results_ok::<DigestRow>(&a(&cql.digest));

    // The dead-letter table.
    let q: QuarantineValues = (20261122, 3, 42, "cam-c".into(), vec![1, 2], "reason".into(), now.millis(), 60);
    binds_ok(&a(&cql.insert_quarantine), &q);
    binds_ok(&a(&cql.quarantined), &(20261122_i32,));
    results_ok::<QuarantineRow>(&a(&cql.quarantined));
    binds_ok(&a(&cql.release), &(20261122_i32, 3_i32, 42_i64));

    // Subscriptions: a change and a deletion, and the listing.
    let changes = super::plan::subscription_writes(&[subscription_set("sub-1"), subscription_deleted("sub-1")]);
    assert_eq!(changes.len(), 2);
    for c in &changes {
        binds_ok(&a(&cql.insert_subscription), c);
    }
    binds_ok(&a(&cql.subscriptions), &(super::plan::SUBSCRIPTIONS_BUCKET,));
    results_ok::<SubscriptionRow>(&a(&cql.subscriptions));
    let letters = super::plan::dead_letter_writes(&[dead_lettered("sub-1", "msg_1"), released("sub-1", "msg_1")]);
    assert_eq!(letters.len(), 2);
    for l in &letters {
        binds_ok(&a(&cql.insert_dead_letter), l);
    }
    binds_ok(&a(&cql.dead_letters), &("sub-1",));
    results_ok::<DeadLetterRow>(&a(&cql.dead_letters));

    // Deletions: the mark, the recount of deleted rows and its cell, the reads that decide the
    // purges, and the purges.
    let plan = WritePlan::build(&[deleted(&id)], &policy(), now, &KeptSet::new()).unwrap();
    binds_ok(&a(&cql.insert_deletion), &plan.deletion_chunks()[0][0]);
    binds_ok(&a(&cql.recount_deleted), &recount_key);
    results_ok::<DeletedRecountRow>(&a(&cql.recount_deleted));
    let bucket = plan.deleted_buckets()[0].clone();
    let cell = super::plan::deleted_count_row(&bucket, 1, policy().retention_days, now).expect("a live cell");
    binds_ok(&a(&cql.insert_deleted_count), &cell);
    binds_ok(&a(&cql.event_deleted), &event_key);
    results_ok::<DeletedRow>(&a(&cql.event_deleted));
    binds_ok(&a(&cql.segment_events), &clustering_key);
    results_ok::<SegmentEventsRow>(&a(&cql.segment_events));
    let purge =
        (super::plan::PURGES_BUCKET, "cam-c", 20261122_i32, "devices/cam-c/segments/s".to_owned(), 60_i32, 1_i64);
    binds_ok(&a(&cql.insert_purge), &purge);
    binds_ok(&a(&cql.purges), &(super::plan::PURGES_BUCKET,));
    results_ok::<PurgeRow>(&a(&cql.purges));
    binds_ok(&a(&cql.delete_purge), &(super::plan::PURGES_BUCKET, "cam-c", 20261122_i32, "k"));

    // Erasures: the mark and its reading, the rows that name the objects, the partitions and
    // the device's offset deleted at the erasure's timestamp.
    let e = super::store::erase::ErasureCql::new(ks);
    let mark: super::store::erase::ErasureValues = (super::store::erase::ERASURES_BUCKET, "cam-c".into(), 7, 1, 0, 7);
    binds_ok(&a(&e.insert_erasure), &mark);
    binds_ok(&a(&e.erasures), &(super::store::erase::ERASURES_BUCKET,));
    results_ok::<super::store::erase::MarkRow>(&a(&e.erasures));
    for read in [&e.day_events, &e.day_segments] {
        binds_ok(&a(read), &day_key_values);
        results_ok::<super::store::erase::IdRow>(&a(read));
    }
    assert_eq!(e.delete_day.len(), super::store::erase::DEVICE_TABLES.len());
    for delete in &e.delete_day {
        binds_ok(&a(delete), &(7_i64, "cam-c", 20261122_i32));
    }
    binds_ok(&a(&e.delete_device), &(7_i64, "cam-c"));
    binds_ok(&a(&e.delete_kept), &(7_i64, "cam-c"));
    binds_ok(&a(&e.delete_kept_device), &(7_i64, 0_i32, "cam-c"));
    // Exports: a request's row and pending row, a completion's row and the pending row's
    // deletion, the reads, an erasure's deletions.
    use super::store::exports::{export_writes, ExportCql, ExportRow, PENDING_BUCKET};
    let x = ExportCql::new(ks);
    let export_id = schemas::ExportId::generate(now, 1);
    let today = DayOffset::default().today();
    let requested =
        schemas::ExportRequested { cid: cid("cam-c"), export_id: export_id.clone(), from: today, to: today };
    let request = schemas::Envelope::new(Report::ExportRequested(requested), now);
    let (row, pending) = export_writes(&request, now).expect("a live request");
    binds_ok(&a(&x.insert_export), &row);
    binds_ok(&a(&x.insert_pending), &pending.expect("a request is pending"));
    let completed = schemas::ExportCompleted {
        cid: cid("cam-c"),
        export_id: export_id.clone(),
        requested_at: now,
        from: today,
        to: today,
        outcome: schemas::ExportOutcome::Failed { reason: "x".into() },
        expires_at: now.plus_millis(60_000),
    };
    let completion = schemas::Envelope::new(Report::ExportCompleted(completed), now);
    let (row, pending) = export_writes(&completion, now).expect("a live completion");
    assert!(
        pending.is_none() && row.9 > schemas::rows::write_stamp(&request),
        "the completion is written above its request"
    );
    binds_ok(&a(&x.insert_export), &row);
    binds_ok(&a(&x.delete_pending), &(7_i64, PENDING_BUCKET, "e", "cam-c"));
    binds_ok(&a(&x.exports), &("cam-c", "~", 10_i32));
    results_ok::<ExportRow>(&a(&x.exports));
    binds_ok(&a(&x.export), &("cam-c", "e"));
    results_ok::<ExportRow>(&a(&x.export));
    binds_ok(&a(&x.pending), &(PENDING_BUCKET, 10_i32));
    results_ok::<(String, String)>(&a(&x.pending));
    binds_ok(&a(&x.delete_export), &(7_i64, "cam-c", "e"));
    // Storage used: the segment's counted row and where every copy says it is, the freed mark,
    // the recount of an hour and the registers it writes, the reads.
    let (used, st) = start("cam-u", "motion", now.plus_millis(-1000));
    let plan = WritePlan::build(
        &[st, segment("cam-u", "seg-u", now.plus_millis(-500), &[(&used, 0)])],
        &policy(),
        now,
        &KeptSet::new(),
    )
    .unwrap();
    binds_ok(&a(&cql.insert_segment_home), &plan.home_chunks()[0][0]);
    binds_ok(&a(&cql.insert_usage), &plan.usage_chunks()[0][0]);
    let freed: super::plan::FreedValues = ("cam-u".into(), 20261122, 1, "seg-u".into(), true, 60, 1);
    binds_ok(&a(&cql.insert_freed), &freed);
    let bucket = plan.usage_buckets()[0].clone();
    binds_ok(&a(&cql.recount_usage), &(bucket.0.as_str(), bucket.1, bucket.2));
    results_ok::<UsageRow>(&a(&cql.recount_usage));
    let cell =
        count_row(&bucket, 5_000_000_000, Some(now.millis()), policy().retention_days, now).expect("a live cell");
    binds_ok(&a(&cql.insert_usage_stored), &cell);
    binds_ok(&a(&cql.insert_usage_freed), &cell);
    binds_ok(&a(&cql.day_usage), &day_key_values);
    results_ok::<CountRow>(&a(&cql.day_usage));
    binds_ok(&a(&cql.usage_scan), &());
    results_ok::<CountRow>(&a(&cql.usage_scan));
    // Keeps: the keep row, the device list, the reads of a keep's rewrite, and the rewrite
    // itself (the plan's own row types, without TTL).
    let mut kept = KeptSet::new();
    kept.insert(("cam-c".to_owned(), id.as_str().to_owned()));
    let batch = [kept_report(&id), end(&id, 10, EndStatus::Complete)];
    let plan = WritePlan::build(&batch, &policy(), now, &kept).unwrap();
    let (cid, event_id, day, trig, k, at, stamp) = plan.keeps().next().unwrap();
    let keep: KeepValues = (cid.to_owned(), event_id.to_owned(), day, trig, k, at, stamp, 0, stamp);
    binds_ok(&a(&cql.insert_keep), &keep);
    assert_eq!(plan.event_chunks()[0][0].10, 0, "a kept event's row has no TTL");
    binds_ok(&a(&cql.keeps), &("cam-c",));
    results_ok::<KeepRow>(&a(&cql.keeps));
    binds_ok(&a(&cql.insert_kept_device), &(0_i32, "cam-c", 0_i32, 1_i64));
    binds_ok(&a(&cql.kept_devices), &(0_i32,));
    results_ok::<(String,)>(&a(&cql.kept_devices));
    binds_ok(&a(&cql.event_whole), &event_key);
    results_ok::<EventWholeRow>(&a(&cql.event_whole));
    binds_ok(&a(&cql.segment_whole), &clustering_key);
    results_ok::<SegmentWholeRow>(&a(&cql.segment_whole));
}

#[test]
fn the_checker_catches_mismatches() {
    // The schema check above is only worth something if it fails on a wrong type or count.
    let ks = "k";
    let tables = parse_schema(ks);
    let p = analyze(ks, &tables, &Cql::new(ks).digest);
    let ctx = RowSerializationContext::from_specs(&p.binds);
    let mut buf = Vec::new();
    assert!(("cid", 1_i64).serialize(&ctx, &mut RowWriter::new(&mut buf)).is_err(), "bigint bound to an int");
    assert!(("cid",).serialize(&ctx, &mut RowWriter::new(&mut buf)).is_err(), "too few values");
    assert!(<(String, i32, i64)>::type_check(&p.results).is_err(), "int read from a bigint");
    assert!(<(String, i64)>::type_check(&p.results).is_err(), "too few columns");
    // A range must slice the next clustering column.
    let range_on = |col: &str| {
        let cql = format!("SELECT COUNT(*) FROM k.events WHERE cid = ? AND day = ? AND {col} >= ?");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyze(ks, &tables, &cql))).is_ok()
    };
    assert!(range_on("triggered_at"));
    assert!(!range_on("event_id"), "a range on the second clustering column");
    assert!(!range_on("kind"), "a range on a regular column");
}
