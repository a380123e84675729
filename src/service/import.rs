//! Data in: `POST /people/import.csv`. The file uses the export's headers
//! (`Person ID`, `Created At`, `Updated At` and `Exported At` are ignored;
//! unknown columns are refused). All or nothing: every row is checked
//! first, and any problem (bad value, duplicate or existing email, an
//! erased person's suppressed email) rejects the whole file with a report
//! of every row error. Accepted people get source `IMPORT` and are inserted
//! set-based, with one `PEOPLE_IMPORTED` audit event naming them all.

use std::collections::{HashMap, HashSet};

use entity::{person, suppressed_email};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::authorize;
use super::export::HEADERS;
use super::people::{ContactInput, new_row};
use super::suppression::Suppression;
use crate::audit::{self, Action, AuditEvent, FieldChange, NewEvent, Subject};
use crate::auth::{Caller, Permission};
use crate::db::{Db, insert_in_chunks};
use crate::domain::{ComplianceCard, Contact, Source, SourceType};
use crate::error::{DbResultExt, Error, Result, RowError};

/// Row errors reported at most (the count says how many there were).
const MAX_REPORTED: usize = 1_000;
/// Rows per INSERT: 25 columns each stays under SQLite's bind limit.
const ROWS_PER_INSERT: usize = 1_000;
/// Values per `IN (…)` list.
const CHUNK: usize = 5_000;

/// What an import did.
#[derive(Clone, Debug)]
pub struct ImportReport {
    pub imported: u64,
    pub event: AuditEvent,
}

/// The API field behind each contact column, for error reports.
fn column_of(field: &str) -> &'static str {
    match field {
        "firstName" => "First Name",
        "lastName" => "Last Name",
        "company" => "Company",
        "title" => "Title",
        "email" => "Email ID",
        "phone" => "Phone Number",
        "website" => "Website",
        "other" => "Other",
        "salesforceId" => "Salesforce ID",
        "facebook" => "Facebook",
        "twitter" => "Twitter",
        _ => "LinkedIn",
    }
}

/// Undoes the export's formula neutralising, so an export imports back.
fn cell(value: &str) -> Option<String> {
    let v = match value.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => value,
    };
    (!v.trim().is_empty()).then(|| v.to_owned())
}

fn parse_rows(csv_bytes: &[u8], errors: &mut Vec<RowError>) -> Vec<(u64, Contact)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(csv_bytes);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
            .collect(),
        Err(e) => {
            errors.push(RowError {
                line: 1,
                column: None,
                message: format!("the header row cannot be read: {e}"),
            });
            return Vec::new();
        }
    };
    let mut seen = HashSet::new();
    for h in &headers {
        if !HEADERS.contains(&h.as_str()) {
            errors.push(RowError {
                line: 1,
                column: Some(h.clone()),
                message: format!("unknown column {h:?}"),
            });
        } else if !seen.insert(h.clone()) {
            errors.push(RowError {
                line: 1,
                column: Some(h.clone()),
                message: format!("column {h:?} appears twice"),
            });
        }
    }
    if !errors.is_empty() {
        return Vec::new();
    }
    let index: HashMap<&str, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(RowError {
                    line,
                    column: None,
                    message: format!("the row cannot be read: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let get = |h: &str| index.get(h).and_then(|&i| record.get(i)).and_then(cell);
        let input = ContactInput {
            first_name: get("First Name"),
            last_name: get("Last Name"),
            company: get("Company"),
            title: get("Title"),
            email: get("Email ID"),
            phone: get("Phone Number"),
            website: get("Website"),
            other: get("Other"),
            salesforce_id: get("Salesforce ID"),
            facebook: get("Facebook"),
            twitter: get("Twitter"),
            linkedin: get("LinkedIn"),
        };
        match input.parse() {
            Ok(contact) => rows.push((line, contact)),
            Err(Error::BadInput { field, message }) => errors.push(RowError {
                line,
                column: Some(column_of(&field).to_owned()),
                message,
            }),
            Err(e) => errors.push(RowError {
                line,
                column: None,
                message: e.to_string(),
            }),
        }
    }
    rows
}

/// Imports people from CSV (`PEOPLE_IMPORTED`; sales, admin).
#[tracing::instrument(skip(db, caller, suppression, csv_bytes), fields(bytes = csv_bytes.len()))]
pub async fn import_people(
    db: &Db,
    caller: &Caller,
    suppression: &Suppression,
    csv_bytes: &[u8],
) -> Result<ImportReport> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::PeopleImported,
        &[],
    )
    .await?;
    let mut errors = Vec::new();
    let rows = parse_rows(csv_bytes, &mut errors);
    if errors.is_empty() && rows.is_empty() {
        errors.push(RowError {
            line: 1,
            column: None,
            message: "the file has no rows".into(),
        });
    }

    // Emails: unique within the file, not taken, not suppressed.
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (line, contact) in &rows {
        if let Some(email) = &contact.email {
            if let Some(first) = first_line.get(email.normalized()) {
                errors.push(RowError {
                    line: *line,
                    column: Some("Email ID".into()),
                    message: format!("{} already appears on line {first}", email.as_str()),
                });
            } else {
                first_line.insert(email.normalized().to_owned(), *line);
            }
        }
    }
    let txn = db.begin_write().await?;
    let emails: Vec<String> = first_line.keys().cloned().collect();
    let mut taken = HashSet::new();
    for chunk in emails.chunks(CHUNK) {
        let rows = person::Entity::find()
            .filter(person::Column::EmailNormalized.is_in(chunk.iter().cloned()))
            .all(&*txn)
            .await?;
        taken.extend(rows.into_iter().filter_map(|r| r.email_normalized));
    }
    let by_hash: HashMap<String, &str> = rows
        .iter()
        .filter_map(|(_, c)| c.email.as_ref())
        .map(|e| (suppression.hash(e), e.normalized()))
        .collect();
    let hashes: Vec<String> = by_hash.keys().cloned().collect();
    let mut suppressed = HashSet::new();
    for chunk in hashes.chunks(CHUNK) {
        let rows = suppressed_email::Entity::find()
            .filter(suppressed_email::Column::EmailHash.is_in(chunk.iter().cloned()))
            .all(&*txn)
            .await?;
        suppressed.extend(
            rows.into_iter()
                .filter_map(|r| by_hash.get(&r.email_hash).map(|e| e.to_string())),
        );
    }
    for (line, contact) in &rows {
        let Some(email) = &contact.email else {
            continue;
        };
        let problem = if suppressed.contains(email.normalized()) {
            Some("belongs to an erased person and is suppressed")
        } else if taken.contains(email.normalized()) {
            Some("belongs to a person who already exists")
        } else {
            None
        };
        if let Some(problem) = problem {
            errors.push(RowError {
                line: *line,
                column: Some("Email ID".into()),
                message: format!("{} {problem}", email.as_str()),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        errors.truncate(MAX_REPORTED);
        return Err(Error::InvalidRows { errors });
    }

    let now = crate::time::now();
    let card = ComplianceCard {
        authorization: None,
        source: Some(Source::new(SourceType::Import, None)?),
    };
    let mut subjects = Vec::with_capacity(rows.len());
    let mut models = Vec::with_capacity(rows.len());
    for (_, contact) in &rows {
        let id = Uuid::now_v7();
        models.push(new_row(id, contact, &card, now));
        let mut changes =
            FieldChange::diff(Contact::default().audit_values(), &contact.audit_values());
        changes.push(FieldChange::new(
            "sourceType",
            serde_json::Value::Null,
            SourceType::Import.as_str().into(),
        ));
        subjects.push(Subject {
            person_id: id,
            changes,
        });
    }
    let imported = models.len() as u64;
    insert_in_chunks(&*txn, models, ROWS_PER_INSERT)
        .await
        .on_unique(|| {
            Error::Conflict("a person with one of these emails was created meanwhile; retry".into())
        })?;
    let event = audit::append(
        &txn,
        NewEvent::success(caller, Action::PeopleImported)
            .subjects(subjects)
            .details(serde_json::json!({ "source": "csv", "count": imported })),
    )
    .await?;
    txn.commit().await?;
    let event = audit::chained(db, event).await?;
    Ok(ImportReport { imported, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_formula_guard_is_removed_on_import() {
        assert_eq!(cell("'=1+1").as_deref(), Some("=1+1"));
        assert_eq!(cell("'quoted").as_deref(), Some("'quoted"));
        assert_eq!(cell("  "), None);
    }
}
