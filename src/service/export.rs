//! Data out: one person's CSV, the streamed CSV of many, and the access
//! package (GDPR Art. 15/20). Every export is audited.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::person;
use futures_util::StreamExt;
use sea_orm::{
    ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Statement,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::people::{filter_condition, json_fields, to_person};
use super::{authorize, email, subscriptions};
use crate::audit::{self, Action, EventFilter, NewEvent};
use crate::auth::{Caller, Permission};
use crate::db::{
    Columns, Db, FromRow, borrowed_text, parse_json_array, query_json, sqlite_timestamp,
};
use crate::domain::{PeopleFilter, Person};
use crate::error::{Error, Result};

/// The CSV columns, in order, exactly as users' tools expect them.
pub const HEADERS: [&str; 16] = [
    "First Name",
    "Last Name",
    "Company",
    "Title",
    "Email ID",
    "Phone Number",
    "Website",
    "Other",
    "Updated At",
    "Created At",
    "Salesforce ID",
    "Person ID",
    "Facebook",
    "Twitter",
    "LinkedIn",
    "Exported At",
];

/// Rows gathered before a chunk of the streamed export is sent (~50 KiB).
const ROWS_PER_CHUNK: usize = 250;
/// People read per page of the streamed export on SQLite (see
/// [`stream_pages`]): about 260 KiB of JSON. Pages of 5,000 cost 2 % fewer
/// instructions in all and 8 MiB more of the server's memory.
const ROWS_PER_PAGE: usize = 1_000;
/// Chunks buffered between the query and the client: memory stays flat.
const STREAM_BUFFER: usize = 4;
/// The access package's format name and version.
pub const ACCESS_PACKAGE_FORMAT: &str = "consentry/access-package";
pub const ACCESS_PACKAGE_VERSION: u32 = 1;

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A cell that a spreadsheet would run as a formula gets a leading `'`.
fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// What the CSV shows of a person: its columns, and no more of the row, so
/// the streamed export reads and decodes only these. Read from a row, or on
/// SQLite from a JSON array of the fields in order, borrowing its text.
#[derive(Debug, serde::Deserialize)]
struct CsvPerson<'a> {
    id: Uuid,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    last_name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    company: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    phone: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    website: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    other: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    salesforce_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    facebook: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    twitter: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_text")]
    linkedin: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "sqlite_timestamp")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "sqlite_timestamp")]
    updated_at: DateTime<Utc>,
}

/// The `person` columns [`CsvPerson`] is read from, in its fields' order.
const CSV_COLUMNS: [person::Column; 15] = {
    use person::Column as C;
    [
        C::Id,
        C::FirstName,
        C::LastName,
        C::Company,
        C::Title,
        C::Email,
        C::Phone,
        C::Website,
        C::Other,
        C::SalesforceId,
        C::Facebook,
        C::Twitter,
        C::Linkedin,
        C::CreatedAt,
        C::UpdatedAt,
    ]
};

impl FromRow for CsvPerson<'static> {
    fn from_row(row: &impl Columns) -> std::result::Result<Self, sea_orm::sqlx::Error> {
        let text = |i| row.get::<Option<String>>(i).map(|t| t.map(Cow::Owned));
        Ok(CsvPerson {
            id: row.get(0)?,
            first_name: text(1)?,
            last_name: text(2)?,
            company: text(3)?,
            title: text(4)?,
            email: text(5)?,
            phone: text(6)?,
            website: text(7)?,
            other: text(8)?,
            salesforce_id: text(9)?,
            facebook: text(10)?,
            twitter: text(11)?,
            linkedin: text(12)?,
            created_at: row.get(13)?,
            updated_at: row.get(14)?,
        })
    }
}

impl<'a> From<&'a Person> for CsvPerson<'a> {
    fn from(p: &'a Person) -> Self {
        let c = &p.contact;
        let text = |v: &'a Option<String>| v.as_deref().map(Cow::Borrowed);
        CsvPerson {
            id: p.id,
            first_name: text(&c.first_name),
            last_name: text(&c.last_name),
            company: text(&c.company),
            title: text(&c.title),
            email: c.email.as_ref().map(|e| Cow::Borrowed(e.as_str())),
            phone: text(&c.phone),
            website: text(&c.website),
            other: text(&c.other),
            salesforce_id: text(&c.salesforce_id),
            facebook: text(&c.facebook),
            twitter: text(&c.twitter),
            linkedin: text(&c.linkedin),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// One person's row, in [`HEADERS`] order; `exported_at` as formatted by
/// [`timestamp`].
fn row<'a>(p: &'a CsvPerson<'_>, exported_at: &'a str) -> [Cow<'a, str>; 16] {
    let text = |v: &'a Option<Cow<'_, str>>| neutralise(v.as_deref().unwrap_or(""));
    [
        text(&p.first_name),
        text(&p.last_name),
        text(&p.company),
        text(&p.title),
        text(&p.email),
        text(&p.phone),
        text(&p.website),
        text(&p.other),
        Cow::Owned(timestamp(p.updated_at)),
        Cow::Owned(timestamp(p.created_at)),
        text(&p.salesforce_id),
        Cow::Owned(p.id.to_string()),
        text(&p.facebook),
        text(&p.twitter),
        text(&p.linkedin),
        Cow::Borrowed(exported_at),
    ]
}

/// CSV bytes of the header row and then `people`' rows.
fn csv_bytes<'a>(
    header: bool,
    people: impl IntoIterator<Item = &'a CsvPerson<'a>>,
    exported_at: DateTime<Utc>,
) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let fail = |e: csv::Error| Error::from(anyhow::Error::from(e));
    if header {
        w.write_record(HEADERS).map_err(fail)?;
    }
    let exported_at = timestamp(exported_at);
    for p in people {
        w.write_record(row(p, &exported_at).iter().map(|cell| cell.as_bytes()))
            .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| Error::from(anyhow::anyhow!("{e}")))
}

/// The CSV of one person: the header row and their row.
pub fn person_csv(p: &Person, exported_at: DateTime<Utc>) -> Result<String> {
    String::from_utf8(csv_bytes(true, [&CsvPerson::from(p)], exported_at)?)
        .map_err(|e| anyhow::Error::from(e).into())
}

/// One person's export.
#[derive(Clone, Debug)]
pub struct PersonExport {
    pub filename: String,
    pub csv: String,
    pub exported_at: DateTime<Utc>,
}

/// Exports one person as CSV (`PERSON_EXPORTED`; any role).
#[tracing::instrument(skip(db, caller))]
pub async fn export_person(db: &Db, caller: &Caller, person_id: Uuid) -> Result<PersonExport> {
    authorize(
        db,
        caller,
        Permission::UnsubscribeAndExport,
        Action::PersonExported,
        &[person_id],
    )
    .await?;
    let txn = db.begin_write().await?;
    let person = person::Entity::find_by_id(person_id)
        .one(&*txn)
        .await?
        .ok_or_else(|| Error::person_not_found(person_id))?;
    let person = to_person(person)?;
    let exported_at = crate::time::now();
    let csv = person_csv(&person, exported_at)?;
    audit::append(
        &txn,
        NewEvent::success(caller, Action::PersonExported).subject(person_id, vec![]),
    )
    .await?;
    txn.commit().await?;
    Ok(PersonExport {
        filename: format!("person-{person_id}.csv"),
        csv,
        exported_at,
    })
}

/// Streams the CSV of everyone matching `filter` (`PEOPLE_EXPORTED`; any
/// role): rows are read from a database cursor (PostgreSQL) or a page at a
/// time in one read transaction (SQLite), and sent in chunks through a
/// small buffer, so memory stays flat whatever the row count, and a client
/// that goes away stops the reads. The audit event, naming the filter and
/// the rows sent, is written when the stream ends.
#[tracing::instrument(skip(db, caller))]
pub async fn export_people(
    db: &Db,
    caller: &Caller,
    filter: PeopleFilter,
) -> Result<mpsc::Receiver<Vec<u8>>> {
    authorize(
        db,
        caller,
        Permission::UnsubscribeAndExport,
        Action::PeopleExported,
        &[],
    )
    .await?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let db = db.clone();
    let caller = caller.clone();
    tokio::spawn(async move {
        let exported_at = crate::time::now();
        let (rows, completed) = match stream_rows(&db, &filter, exported_at, &tx).await {
            Ok(sent) => sent,
            Err(e) => {
                e.log(Some(&caller.request_id));
                (0, false)
            }
        };
        let event = NewEvent::success(&caller, Action::PeopleExported)
            .details(json!({ "filter": filter, "rowCount": rows, "completed": completed }));
        let written = async {
            let txn = db.begin_write().await?;
            audit::append(&txn, event).await?;
            txn.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = written.await {
            e.log(Some(&caller.request_id));
        }
    });
    Ok(rx)
}

/// Sends the header and every row; returns the rows sent and whether the
/// client took them all.
async fn stream_rows(
    db: &Db,
    filter: &PeopleFilter,
    exported_at: DateTime<Utc>,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<(u64, bool)> {
    if tx.send(csv_bytes(true, [], exported_at)?).await.is_err() {
        return Ok((0, false));
    }
    let mut out = Out {
        tx,
        exported_at,
        sent: 0,
    };
    let completed = match db.backend() {
        DatabaseBackend::Postgres => stream_cursor(db, filter, &mut out).await?,
        _ => stream_pages(db, filter, &mut out).await?,
    };
    Ok((out.sent, completed))
}

/// Where the streamed export's rows go, and how many went.
struct Out<'a> {
    tx: &'a mpsc::Sender<Vec<u8>>,
    exported_at: DateTime<Utc>,
    sent: u64,
}

impl Out<'_> {
    /// Sends `people`'s rows as one chunk; false if the client went away.
    async fn send(&mut self, people: &[CsvPerson<'_>]) -> Result<bool> {
        if people.is_empty() {
            return Ok(true);
        }
        let chunk = csv_bytes(false, people, self.exported_at)?;
        if self.tx.send(chunk).await.is_err() {
            return Ok(false);
        }
        self.sent += people.len() as u64;
        Ok(true)
    }
}

/// The people matching `filter`, in id order.
fn csv_select(filter: &PeopleFilter) -> sea_orm::Select<person::Entity> {
    person::Entity::find()
        .select_only()
        .columns(CSV_COLUMNS)
        .filter(filter_condition(filter))
        .order_by_asc(person::Column::Id)
}

/// PostgreSQL: one query, its rows read from a cursor (whose snapshot is
/// the query's) and sent [`ROWS_PER_CHUNK`] at a time. Whether the client
/// took them all.
async fn stream_cursor(db: &Db, filter: &PeopleFilter, out: &mut Out<'_>) -> Result<bool> {
    let stmt = csv_select(filter).build(db.backend());
    let mut rows = db.stream::<CsvPerson>(&stmt);
    let mut batch: Vec<CsvPerson> = Vec::with_capacity(ROWS_PER_CHUNK);
    while let Some(row) = rows.next().await {
        batch.push(row?);
        if batch.len() >= ROWS_PER_CHUNK {
            if !out.send(&batch).await? {
                return Ok(false);
            }
            batch.clear();
        }
    }
    out.send(&batch).await
}

/// SQLite: pages of [`ROWS_PER_PAGE`] people in id order, each read as one
/// JSON array that SQLite builds ([`query_json`]), where a cursor's
/// rows come from sqlx's SQLite thread one by one (B5, exporting
/// 1,000,000 people: 0.46–0.55× of the `sqlite3` tool's dump with the
/// cursor, 1.29–1.67× in pages). The pages are read in one read
/// transaction, so together they see one snapshot, as one query would.
/// Whether the client took every row.
async fn stream_pages(db: &Db, filter: &PeopleFilter, out: &mut Out<'_>) -> Result<bool> {
    let txn = db.begin_read().await?;
    let fields = json_fields(&CSV_COLUMNS, "");
    let mut after: Option<Uuid> = None;
    loop {
        let mut page = csv_select(filter).limit(ROWS_PER_PAGE as u64);
        if let Some(after) = after {
            page = page.filter(person::Column::Id.gt(after));
        }
        let select = page.build(DatabaseBackend::Sqlite);
        let sql = format!(
            "SELECT json_group_array(json_array({fields})) FROM ({})",
            select.sql
        );
        let json = query_json(&txn, Statement { sql, ..select }).await?;
        let mut people: Vec<CsvPerson> = parse_json_array(&json)?;
        // The aggregate reads the sorted subquery in its order; this only
        // makes sure of it (a sorted page costs one pass).
        people.sort_by_key(|p| p.id);
        for chunk in people.chunks(ROWS_PER_CHUNK) {
            if !out.send(chunk).await? {
                return Ok(false);
            }
        }
        match people.last() {
            Some(last) if people.len() == ROWS_PER_PAGE => after = Some(last.id),
            _ => break,
        }
    }
    txn.commit().await?;
    Ok(true)
}

/// The access package of one person (`PERSON_DATA_EXPORTED`; compliance,
/// admin): one JSON document with the person, their card, subscription
/// history, emails and every audit event about them (only their own
/// changes), in the versioned shape the README documents.
#[tracing::instrument(skip(db, caller))]
pub async fn export_person_data(db: &Db, caller: &Caller, person_id: Uuid) -> Result<Value> {
    authorize(
        db,
        caller,
        Permission::EraseAndAccess,
        Action::PersonDataExported,
        &[person_id],
    )
    .await?;
    let person = person::Entity::find_by_id(person_id)
        .one(db.conn())
        .await?
        .ok_or_else(|| Error::person_not_found(person_id))?;
    let p = to_person(person)?;
    let history = subscriptions::history(db, caller, person_id).await?;
    let emails = email::list_emails(db, caller, person_id).await?;
    let filter = EventFilter {
        person_id: Some(person_id),
        ..Default::default()
    };
    let mut events = Vec::new();
    let mut before = None;
    loop {
        let (page, more) = audit::list(db, &filter, 500, before).await?;
        before = page.last().map(|e| e.sequence);
        for e in page {
            let changes: Vec<Value> = e
                .subjects
                .iter()
                .filter(|s| s.person_id == person_id)
                .flat_map(|s| &s.changes)
                .map(|c| json!({ "field": c.field, "before": c.before, "after": c.after, "erased": c.erased }))
                .collect();
            events.push(json!({
                "sequence": e.sequence, "occurredAt": e.occurred_at, "actor": e.actor,
                "actorRoles": e.actor_roles, "action": e.action.as_str(), "outcome": e.outcome.as_str(),
                "reason": e.reason, "changes": changes,
            }));
        }
        if !more {
            break;
        }
    }
    let exported_at = crate::time::now();
    let a = p.card.authorization.as_ref();
    let s = p.card.source.as_ref();
    let c = &p.contact;
    let package = json!({
        "format": ACCESS_PACKAGE_FORMAT,
        "version": ACCESS_PACKAGE_VERSION,
        "exportedAt": exported_at,
        "person": {
            "id": p.id, "firstName": c.first_name, "lastName": c.last_name, "company": c.company,
            "title": c.title, "email": c.email.as_ref().map(|e| e.as_str()), "phone": c.phone,
            "website": c.website, "other": c.other, "salesforceId": c.salesforce_id,
            "facebook": c.facebook, "twitter": c.twitter, "linkedin": c.linkedin,
            "createdAt": p.created_at, "updatedAt": p.updated_at,
        },
        "complianceCard": {
            "authorizationType": a.map(|a| a.kind().as_str()),
            "authorizationOther": a.and_then(|a| a.other()),
            "consentDate": a.and_then(|a| a.consent_date()),
            "processingPurpose": a.and_then(|a| a.processing_purpose()),
            "sourceType": s.map(|s| s.kind().as_str()),
            "sourceOther": s.and_then(|s| s.other()),
        },
        "subscription": {
            "unsubscribed": p.subscription.unsubscribed,
            "unsubscribedAt": p.subscription.unsubscribed_at,
        },
        "subscriptionHistory": history.iter().map(|h| json!({
            "type": h.kind.as_str(), "channel": h.channel.as_str(), "occurredAt": h.occurred_at,
            "actor": h.actor, "reason": h.reason,
            "reconsent": h.reconsent_date.map(|d| json!({
                "consentDate": d, "method": h.reconsent_method, "evidence": h.reconsent_evidence,
            })),
        })).collect::<Vec<_>>(),
        "emails": emails.iter().map(|m| json!({
            "id": m.id, "to": m.to, "subject": m.subject, "textBody": m.text_body,
            "htmlBody": m.html_body, "status": m.status.as_str(), "createdAt": m.created_at, "sentAt": m.sent_at,
        })).collect::<Vec<_>>(),
        "auditEvents": events,
    });
    let txn = db.begin_write().await?;
    audit::append(
        &txn,
        NewEvent::success(caller, Action::PersonDataExported).subject(person_id, vec![]),
    )
    .await?;
    txn.commit().await?;
    Ok(package)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{ComplianceCard, Contact, Email, Subscription};

    fn known_person() -> Person {
        Person {
            id: Uuid::parse_str("01936d2e-7a3b-7c4d-8e5f-0123456789ab").unwrap(),
            contact: Contact {
                first_name: Some("Ada".into()),
                last_name: Some("Lovelace, Countess".into()),
                company: Some("=HYPERLINK(\"http://evil\")".into()),
                title: Some("+Analyst".into()),
                email: Some(Email::parse("email", "ada@example.com").unwrap()),
                phone: Some("-1 555 0100".into()),
                website: Some("https://ada.example".into()),
                other: Some("Says \"hello\"\nNew line".into()),
                salesforce_id: Some("003000000000001AAA".into()),
                facebook: Some("@ada".into()),
                twitter: None,
                linkedin: Some("in/ada".into()),
            },
            card: ComplianceCard::default(),
            subscription: Subscription::default(),
            created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            updated_at: Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6).unwrap(),
        }
    }

    #[test]
    fn a_known_person_exports_to_exact_bytes() {
        let exported_at = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let csv = person_csv(&known_person(), exported_at).unwrap();
        // insta compares with normalised line ends; the records end in CRLF.
        assert_eq!(csv.matches("\r\n").count(), 2);
        assert!(csv.ends_with("2026-11-23T12:00:00Z\r\n"));
        insta::assert_snapshot!(csv);
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for cell in ["=1+1", "+1", "-1", "@x", "\tx", "\rx"] {
            assert!(neutralise(cell).starts_with('\''), "{cell:?}");
        }
        assert_eq!(neutralise("Ada"), "Ada");
    }
}
