//! Property tests (proptest): the compliance-card rules hold for any input,
//! and any single-byte change to any stored audit value is detected by
//! verification and pinned on the right event.

use chrono::NaiveDate;
use consentry::domain::{Authorization, AuthorizationType, MAX_TEXT_CHARS, Source, SourceType};
use consentry::error::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

const AUTHORIZATION_TYPES: [AuthorizationType; 7] = [
    AuthorizationType::Consent,
    AuthorizationType::LegitimateInterest,
    AuthorizationType::PerformanceOfContract,
    AuthorizationType::LegalObligation,
    AuthorizationType::VitalInterests,
    AuthorizationType::PublicInterest,
    AuthorizationType::Other,
];

const SOURCE_TYPES: [SourceType; 5] = [
    SourceType::CrmSync,
    SourceType::Import,
    SourceType::ManualUpload,
    SourceType::ChromeExtension,
    SourceType::Other,
];

/// Free text as clients send it: absent, blank, ordinary, padded, or too long.
fn text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[ \t\n]{0,3}".prop_map(Some),
        "[ ]{0,2}[a-zA-Z0-9éü ,.'-]{1,40}[ ]{0,2}".prop_map(Some),
        (MAX_TEXT_CHARS - 2..MAX_TEXT_CHARS + 3).prop_map(|n| Some("x".repeat(n))),
    ]
}

fn usable(t: &Option<String>) -> Option<&str> {
    t.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TEXT_CHARS)
}

fn field_of(err: &Error) -> &str {
    match err {
        Error::BadInput { field, .. } => field,
        other => panic!("not BAD_USER_INPUT: {other:?}"),
    }
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    /// `consentDate` (not in the future) and `processingPurpose` exactly for
    /// CONSENT, `authorizationOther` exactly for OTHER; otherwise a
    /// BAD_USER_INPUT naming one of the offending fields.
    #[test]
    fn an_authorization_is_built_exactly_when_the_rules_hold(
        kind in proptest::sample::select(&AUTHORIZATION_TYPES[..]),
        days in proptest::option::of(-800i64..5),
        purpose in text(),
        other in text(),
    ) {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let date = days.map(|d| today + chrono::Duration::days(d));
        let valid = match kind {
            AuthorizationType::Consent => {
                date.is_some_and(|d| d <= today) && usable(&purpose).is_some() && other.is_none()
            }
            AuthorizationType::Other => {
                date.is_none() && purpose.is_none() && usable(&other).is_some()
            }
            _ => date.is_none() && purpose.is_none() && other.is_none(),
        };
        match Authorization::new(kind, date, purpose.as_deref(), other.as_deref(), today) {
            Ok(a) => {
                prop_assert!(valid, "accepted an invalid card");
                prop_assert_eq!(a.kind(), kind);
                prop_assert_eq!(a.consent_date(), date);
                prop_assert_eq!(a.processing_purpose(), usable(&purpose));
                prop_assert_eq!(a.other(), usable(&other));
            }
            Err(e) => {
                prop_assert!(!valid, "refused a valid card: {e}");
                let field = field_of(&e);
                prop_assert!(
                    ["consentDate", "processingPurpose", "authorizationOther"].contains(&field),
                    "field {field}"
                );
            }
        }
    }

    /// `sourceOther` exactly for OTHER.
    #[test]
    fn a_source_is_built_exactly_when_the_rules_hold(
        kind in proptest::sample::select(&SOURCE_TYPES[..]),
        other in text(),
    ) {
        let valid = match kind {
            SourceType::Other => usable(&other).is_some(),
            _ => other.is_none(),
        };
        match Source::new(kind, other.as_deref()) {
            Ok(s) => {
                prop_assert!(valid);
                prop_assert_eq!(s.kind(), kind);
                prop_assert_eq!(s.other(), usable(&other));
            }
            Err(e) => {
                prop_assert!(!valid, "refused a valid source: {e}");
                prop_assert_eq!(field_of(&e), "sourceOther");
            }
        }
    }
}

/// One stored audit value: where it is and what it holds.
#[derive(Clone, Debug)]
struct Cell {
    table: &'static str,
    column: &'static str,
    /// `WHERE` clause naming the row.
    row: String,
    sequence: i64,
    value: String,
    kind: Kind,
}

/// How a column is stored, which decides what a one-byte change is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Text: any ASCII byte may become another printable one.
    Text,
    /// Text of hexadecimal digits (hashes, request ids): a digit changes.
    Hex,
    /// A UUID (16 bytes; shown here as 32 hex digits): one digit changes.
    Uuid,
}

const EVENT_COLUMNS: [(&str, Kind); 10] = [
    ("id", Kind::Uuid),
    ("actor", Kind::Text),
    ("actor_roles", Kind::Text),
    ("action", Kind::Text),
    ("outcome", Kind::Text),
    ("reason", Kind::Text),
    ("request_id", Kind::Hex),
    ("details", Kind::Text),
    ("previous_hash", Kind::Hex),
    ("hash", Kind::Hex),
];

/// SQL reading a column as text (a UUID as 32 lowercase hex digits).
fn read_expr(app: &TestApp, column: &str, kind: Kind) -> String {
    let name = column.rsplit('.').next().unwrap_or(column);
    match (kind, app.is_postgres()) {
        (Kind::Uuid, true) => format!("replace(CAST({column} AS TEXT), '-', '') AS {name}"),
        (Kind::Uuid, false) => format!("lower(hex({column})) AS {name}"),
        _ => column.to_owned(),
    }
}

/// SQL literal writing `value` back in the column's type.
fn write_expr(app: &TestApp, value: &str, kind: Kind) -> String {
    match (kind, app.is_postgres()) {
        (Kind::Uuid, true) => format!("CAST('{value}' AS UUID)"),
        (Kind::Uuid, false) => format!("X'{value}'"),
        _ => format!("'{}'", value.replace('\'', "''")),
    }
}

async fn cells(app: &TestApp) -> Vec<Cell> {
    let conn = app.db.conn();
    let backend = conn.get_database_backend();
    let mut cells = Vec::new();
    let events = conn
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT sequence, {} FROM audit_event ORDER BY sequence",
                EVENT_COLUMNS
                    .iter()
                    .map(|&(c, kind)| read_expr(app, c, kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
        .await
        .unwrap();
    for row in events {
        let sequence: i64 = row.try_get("", "sequence").unwrap();
        for (column, kind) in EVENT_COLUMNS {
            if let Some(value) = row.try_get::<Option<String>>("", column).unwrap() {
                cells.push(Cell {
                    table: "audit_event",
                    column,
                    row: format!("sequence = {sequence}"),
                    sequence,
                    value,
                    kind,
                });
            }
        }
    }
    let people = conn
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT e.sequence AS sequence, {}, p.changes AS changes \
                 FROM audit_event_person p JOIN audit_event e ON e.id = p.event_id",
                read_expr(app, "p.person_id", Kind::Uuid)
            ),
        ))
        .await
        .unwrap();
    for row in people {
        let sequence: i64 = row.try_get("", "sequence").unwrap();
        let person: String = row.try_get("", "person_id").unwrap();
        let event = format!("event_id = (SELECT id FROM audit_event WHERE sequence = {sequence})");
        let key = format!(
            "{event} AND person_id = {}",
            write_expr(app, &person, Kind::Uuid)
        );
        cells.push(Cell {
            table: "audit_event_person",
            column: "changes",
            row: key.clone(),
            sequence,
            value: row.try_get("", "changes").unwrap(),
            kind: Kind::Text,
        });
        cells.push(Cell {
            table: "audit_event_person",
            column: "person_id",
            row: event,
            sequence,
            value: person,
            kind: Kind::Uuid,
        });
    }
    cells
}

/// `value` with the byte at (a position chosen by) `at` replaced by a
/// different one from the column's alphabet; `None` when nothing can change.
fn one_byte_changed(cell: &Cell, at: prop::sample::Index, pick: u8) -> Option<String> {
    let bytes = cell.value.as_bytes();
    let positions: Vec<usize> = (0..bytes.len())
        .filter(|&i| match cell.kind {
            Kind::Text => bytes[i].is_ascii(),
            Kind::Hex | Kind::Uuid => bytes[i].is_ascii_hexdigit(),
        })
        .collect();
    if positions.is_empty() {
        return None;
    }
    let i = positions[at.index(positions.len())];
    let alphabet: Vec<u8> = match cell.kind {
        Kind::Text => (0x20u8..0x7f).collect(),
        Kind::Hex | Kind::Uuid => b"0123456789abcdef".to_vec(),
    };
    let choices: Vec<u8> = alphabet
        .into_iter()
        .filter(|&b| b != bytes[i].to_ascii_lowercase() && b != bytes[i])
        .collect();
    let mut changed = bytes.to_vec();
    changed[i] = choices[pick as usize % choices.len()];
    String::from_utf8(changed).ok()
}

/// Changes the cell's value from `from` to `to`.
async fn set(app: &TestApp, cell: &Cell, from: &str, to: &str) {
    // An event's id is what its person rows point at: changing it leaves
    // them behind (on PostgreSQL the foreign-key triggers are off already;
    // SQLite's switch is per connection, so it goes in the same call).
    let (fk_off, fk_on) = if cell.column == "id" && !app.is_postgres() {
        ("PRAGMA foreign_keys = OFF; ", "; PRAGMA foreign_keys = ON")
    } else {
        ("", "")
    };
    let (table, column, row) = (cell.table, cell.column, &cell.row);
    let (to, from) = (
        write_expr(app, to, cell.kind),
        write_expr(app, from, cell.kind),
    );
    app.sql(&format!(
        "{fk_off}UPDATE {table} SET {column} = {to} WHERE {row} AND {column} = {from}{fk_on}"
    ))
    .await
    .unwrap();
    let now = app
        .sql_i64(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {row} AND {column} = {to}"
        ))
        .await;
    assert_eq!(now, 1, "{cell:?}");
}

async fn any_single_byte_change_to_a_stored_event_is_detected(app: &TestApp) {
    // A history with every kind of value: person rows with sealed changes,
    // bulk events, a denied call, reasons and details.
    let a = app.person_id("prop-a@example.com").await;
    let b = app.person_id("prop-b@example.com").await;
    for q in [
        format!("mutation {{ updatePerson(id: \"{a}\", input: {{title: \"CTO\"}}) {{ id }} }}"),
        format!(
            "mutation {{ unsubscribe(personId: \"{a}\", reason: \"asked by phone\") {{ id }} }}"
        ),
        format!(
            "mutation {{ bulkUpdateSource(selection: {{ids: [\"{a}\", \"{b}\"]}}, input: {{sourceType: IMPORT}}) {{ updatedCount }} }}"
        ),
    ] {
        app.ok(&app.sales(), &q, json!({})).await;
    }
    app.err(
        &app.compliance(),
        &format!("mutation {{ updatePerson(id: \"{b}\", input: {{title: \"X\"}}) {{ id }} }}"),
        json!({}),
    )
    .await;
    crate::audit::disable_append_only_triggers(app).await;
    let cells = cells(app).await;
    assert!(cells.len() > 40, "{} cells", cells.len());

    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 150,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(
                proptest::sample::select(cells),
                any::<prop::sample::Index>(),
                any::<u8>(),
            ),
            |(cell, at, pick)| {
                let Some(changed) = one_byte_changed(&cell, at, pick) else {
                    return Ok(());
                };
                let verification = tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        set(app, &cell, &cell.value, &changed).await;
                        let v = consentry::audit::verify(&app.db).await.unwrap();
                        set(app, &cell, &changed, &cell.value).await;
                        v
                    })
                });
                prop_assert!(!verification.valid, "undetected: {cell:?} -> {changed}");
                prop_assert_eq!(verification.first_invalid_sequence, Some(cell.sequence));
                Ok(())
            },
        )
        .unwrap();
    assert!(consentry::audit::verify(&app.db).await.unwrap().valid);
}

backend_tests!(any_single_byte_change_to_a_stored_event_is_detected);
