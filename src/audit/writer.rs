//! Appending events. Runs inside the caller's transaction, so the event
//! commits or rolls back with the change it describes.

use std::borrow::Cow;

use entity::{audit_event, audit_event_person};
use sea_orm::{ConnectionTrait, DatabaseBackend, EntityTrait, QuerySelect, QueryTrait, Statement};
use uuid::Uuid;

use super::chain::{ENCODING_VERSION, event_hash};
use super::{AuditEvent, NewEvent, Subject};
use crate::db::{Db, WriteTxn};
use crate::error::Error;

/// Person rows per INSERT: bound (SQLite), 2 values each and the event id
/// once, it stays well under SQLite's 32,766 bind parameters; as one JSON
/// parameter (PostgreSQL), it bounds the text of one statement.
const ROWS_PER_INSERT: usize = 8_000;

/// Appends `event` inside `txn` and returns it (with its values in the
/// clear; personal values are stored sealed).
///
/// On PostgreSQL the event is written unchained and committing `txn`
/// chains it (see [`super::chainer`]), so nothing here is serialised beyond
/// the mutation's own row locks. On SQLite the write transaction already
/// holds the only writer, so the event is written chained: it takes the
/// head's next sequence and moves the head in `txn`, which spares a second
/// transaction that would write the event's row and indexes again.
pub async fn append(txn: &WriteTxn, event: NewEvent) -> Result<Appended, Error> {
    append_after(txn, None, event).await
}

/// Runs `change` (a statement that returns no rows), then appends `event`,
/// as [`append`] does, in `txn`. On SQLite `change` goes in the same trip
/// to the connection's thread as the event it is audited by (one trip
/// less per audited change on SQLite's one writer).
pub async fn append_after(
    txn: &WriteTxn,
    change: Option<Statement>,
    mut event: NewEvent,
) -> Result<Appended, Error> {
    let subjects = merge_subjects(std::mem::take(&mut event.subjects));
    let mut writer = EventWriter::begin(txn, event).await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite
        && cfg!(not(feature = "bench-unchained-audit"))
    {
        writer.write_chained(change, &subjects).await?;
    } else {
        if let Some(change) = change {
            txn.execute_raw(change).await?;
        }
        writer.people(&subjects).await?;
    }
    let mut appended = writer.finish().await?;
    appended.0.subjects = subjects;
    Ok(appended)
}

/// An event written in parts inside a transaction: its row, then the
/// people it names a chunk at a time, so an event naming many people is
/// never held whole. Each person may be given once. On PostgreSQL the event
/// row goes in the same statement as the first chunk of people, which saves
/// every audited mutation a round trip.
pub struct EventWriter<'t> {
    txn: &'t WriteTxn,
    event: AuditEvent,
    /// The event row, until it is written.
    row: Option<audit_event::Model>,
}

/// The event row and the first people rows in one statement (PostgreSQL):
/// the people come as one JSON array (see [`people_json`]), so the
/// statement text is the same for any number of them and is prepared once
/// per connection.
const INSERT_EVENT_WITH_PEOPLE: &str = "WITH event AS (\
    INSERT INTO audit_event (id, occurred_at, actor, actor_roles, action, outcome, reason, request_id, details, encoding_version) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)) \
    INSERT INTO audit_event_person (event_id, person_id, changes) \
    SELECT $1, (p ->> 0)::uuid, p ->> 1 FROM json_array_elements($11::json) AS p";

/// An event's later people rows from one JSON array (PostgreSQL; see
/// [`people_json`]): one parameter for any number of rows. SQLite's rows go
/// bound instead (see [`people_insert_sqlite`]).
const INSERT_PEOPLE_POSTGRES: &str = "INSERT INTO audit_event_person (event_id, person_id, changes) \
    SELECT $1, (p ->> 0)::uuid, p ->> 1 FROM json_array_elements($2::json) AS p";

impl<'t> EventWriter<'t> {
    /// Starts the event `event` (its subjects, if any, are ignored: give
    /// them to [`EventWriter::people`]).
    pub async fn begin(txn: &'t WriteTxn, event: NewEvent) -> Result<Self, Error> {
        let occurred_at = crate::time::now();
        let row = audit_event::Model {
            id: Uuid::now_v7(),
            sequence: None,
            occurred_at,
            actor: event.actor.clone(),
            actor_roles: serde_json::to_string(&event.actor_roles).map_err(anyhow::Error::from)?,
            action: event.action.as_str().to_owned(),
            outcome: event.outcome.as_str().to_owned(),
            reason: event.reason.clone(),
            request_id: event.request_id.clone(),
            details: event
                .details
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(anyhow::Error::from)?,
            encoding_version: ENCODING_VERSION,
            previous_hash: None,
            hash: None,
        };
        Ok(EventWriter {
            txn,
            row: Some(row.clone()),
            event: AuditEvent {
                id: row.id,
                sequence: 0,
                occurred_at,
                actor: event.actor,
                actor_roles: event.actor_roles,
                action: event.action,
                outcome: event.outcome,
                reason: event.reason,
                request_id: event.request_id,
                details: event.details,
                previous_hash: String::new(),
                hash: String::new(),
                subjects: Vec::new(),
            },
        })
    }

    /// Writes the rows of `subjects`, their personal values sealed.
    pub async fn people(&mut self, subjects: &[Subject]) -> Result<(), Error> {
        let sealed = super::shred::seal(&**self.txn, subjects).await?;
        for (chunk, sealed) in subjects
            .chunks(ROWS_PER_INSERT)
            .zip(sealed.chunks(ROWS_PER_INSERT))
        {
            let rows = self.person_rows(chunk, sealed)?;
            if self.txn.get_database_backend() == DatabaseBackend::Postgres
                && let Some(row) = self.row.take()
            {
                self.insert_with_people(row, &rows).await?;
                continue;
            }
            self.write_row().await?;
            self.insert_people(rows).await?;
        }
        Ok(())
    }

    /// Writes the event row chained, and the rows of `subjects` (sorted by
    /// person id, each given once; their personal values sealed), all in
    /// the write transaction that holds SQLite's only writer; see
    /// [`append`]. `change` runs first, in the same batch as the event when
    /// the event names few enough people for one.
    async fn write_chained(
        &mut self,
        change: Option<Statement>,
        subjects: &[Subject],
    ) -> Result<(), Error> {
        let sealed = super::shred::seal(&**self.txn, subjects).await?;
        let rows = self.person_rows(subjects, &sealed)?;
        drop(sealed);
        let mut row = self
            .row
            .take()
            .ok_or_else(|| anyhow::anyhow!("audit event {} is written already", self.event.id))?;
        let (last_sequence, previous_hash) = super::chainer::head_for_next(self.txn).await?;
        let sequence = last_sequence + 1;
        let hash = event_hash(&row, sequence, &previous_hash, &rows);
        row.sequence = Some(sequence);
        row.previous_hash = Some(previous_hash.clone());
        row.hash = Some(hash.clone());
        let backend = self.txn.get_database_backend();
        let event = audit_event::Entity::insert(audit_event::ActiveModel::from(row));
        if rows.len() <= ROWS_PER_INSERT {
            // The change, the event, its people and the head in one batch of
            // statements: one trip to SQLite's connection thread instead of
            // four.
            let mut batch: Vec<Statement> = change.into_iter().collect();
            batch.push(event.build(backend));
            if !rows.is_empty() {
                batch.push(people_insert_sqlite(self.event.id, rows));
            }
            batch.push(super::chainer::move_head_statement(
                backend, sequence, &hash,
            ));
            self.txn.execute_raw(statements(backend, batch)).await?;
        } else {
            if let Some(change) = change {
                self.txn.execute_raw(change).await?;
            }
            event.exec_without_returning(&**self.txn).await?;
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                self.insert_people(rows.by_ref().take(ROWS_PER_INSERT).collect())
                    .await?;
            }
            super::chainer::move_head(self.txn, sequence, &hash).await?;
        }
        self.event.sequence = sequence;
        self.event.previous_hash = previous_hash;
        self.event.hash = hash;
        Ok(())
    }

    /// The stored rows of `subjects`, given their sealed changes.
    fn person_rows(
        &self,
        subjects: &[Subject],
        sealed: &[Vec<Cow<'_, super::FieldChange>>],
    ) -> Result<Vec<audit_event_person::Model>, Error> {
        subjects
            .iter()
            .zip(sealed)
            .map(|(s, changes)| {
                Ok(audit_event_person::Model {
                    event_id: self.event.id,
                    person_id: s.person_id,
                    changes: serde_json::to_string(changes)?,
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| anyhow::Error::from(e).into())
    }

    /// Inserts person rows of the event, in one statement.
    async fn insert_people(&self, rows: Vec<audit_event_person::Model>) -> Result<(), Error> {
        let insert = match self.txn.get_database_backend() {
            DatabaseBackend::Postgres => Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                INSERT_PEOPLE_POSTGRES,
                [self.event.id.into(), people_json(&rows)?.into()],
            ),
            _ => people_insert_sqlite(self.event.id, rows),
        };
        self.txn.execute_raw(insert).await?;
        Ok(())
    }

    /// Writes the event row, if it is not written yet.
    async fn write_row(&mut self) -> Result<(), Error> {
        if let Some(row) = self.row.take() {
            audit_event::Entity::insert(audit_event::ActiveModel::from(row))
                .exec_without_returning(&**self.txn)
                .await?;
        }
        Ok(())
    }

    /// Writes the event row and `people` in one statement (PostgreSQL).
    async fn insert_with_people(
        &self,
        row: audit_event::Model,
        people: &[audit_event_person::Model],
    ) -> Result<(), Error> {
        let people = people_json(people)?;
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                INSERT_EVENT_WITH_PEOPLE,
                [
                    row.id.into(),
                    row.occurred_at.into(),
                    row.actor.into(),
                    row.actor_roles.into(),
                    row.action.into(),
                    row.outcome.into(),
                    row.reason.into(),
                    row.request_id.into(),
                    row.details.into(),
                    row.encoding_version.into(),
                    people.into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// The event, complete (its row written if it named nobody); unless
    /// it was written chained, it is chained when the transaction commits.
    /// (Its subjects are not kept: read the event back to list them.)
    pub async fn finish(mut self) -> Result<Appended, Error> {
        self.write_row().await?;
        if self.event.hash.is_empty() {
            self.txn.mark_audited();
        }
        Ok(Appended(self.event))
    }
}

/// An event appended in a transaction not committed yet. Unless it was
/// written chained (SQLite), it has no place in the chain until commit;
/// [`chained`] gives the event as chained.
#[derive(Debug)]
pub struct Appended(AuditEvent);

impl Appended {
    /// The event's id.
    pub fn id(&self) -> Uuid {
        self.0.id
    }
}

/// The event `appended` as chained, once its transaction has committed.
pub async fn chained(db: &Db, appended: Appended) -> Result<AuditEvent, Error> {
    let mut event = appended.0;
    if !event.hash.is_empty() {
        return Ok(event);
    }
    super::chain_pending(db).await?;
    let row = audit_event::Entity::find_by_id(event.id)
        .select_only()
        .columns([
            audit_event::Column::Sequence,
            audit_event::Column::PreviousHash,
            audit_event::Column::Hash,
        ])
        .into_tuple::<(Option<i64>, Option<String>, Option<String>)>()
        .one(db.conn())
        .await?;
    let Some((Some(sequence), Some(previous_hash), Some(hash))) = row else {
        return Err(
            anyhow::anyhow!("audit event {} is committed but not chained yet", event.id).into(),
        );
    };
    event.sequence = sequence;
    event.previous_hash = previous_hash;
    event.hash = hash;
    Ok(event)
}

/// `rows` as the JSON array PostgreSQL's people statements read: one `[id,
/// changes]` pair per row, the id as 32 hex digits (which PostgreSQL reads
/// as a `uuid`), the changes as the JSON text stored.
fn people_json(rows: &[audit_event_person::Model]) -> Result<String, Error> {
    let pairs: Vec<(uuid::fmt::Simple, &str)> = rows
        .iter()
        .map(|r| (r.person_id.simple(), r.changes.as_str()))
        .collect();
    Ok(serde_json::to_string(&pairs).map_err(anyhow::Error::from)?)
}

/// One INSERT of an event's person rows on SQLite, each value bound (see
/// [`crate::db::insert_statement`]; the event id once). Bound rather than
/// passed as one JSON array, which SQLite would parse, take apart a row at
/// a time and unhex (for a bulk update of 100,000 people, 0.65 billion
/// more instructions on the server than binding them).
fn people_insert_sqlite(event_id: Uuid, rows: Vec<audit_event_person::Model>) -> Statement {
    crate::db::insert_statement(
        DatabaseBackend::Sqlite,
        "audit_event_person",
        [("event_id", event_id.into())],
        ["person_id", "changes"],
        rows.into_iter()
            .map(|r| [r.person_id.into(), r.changes.into()]),
    )
}

/// `batch` as one statement that runs them in turn (SQLite; each takes its
/// values after the last one's, as the driver binds them).
fn statements(backend: DatabaseBackend, batch: Vec<Statement>) -> Statement {
    let mut sql = Vec::with_capacity(batch.len());
    let mut values = Vec::new();
    for stmt in batch {
        sql.push(stmt.sql);
        values.extend(stmt.values.map(|v| v.0).unwrap_or_default());
    }
    Statement::from_sql_and_values(backend, sql.join("; "), values)
}

/// Sorts subjects by person id (the canonical order) and merges repeats.
fn merge_subjects(mut subjects: Vec<Subject>) -> Vec<Subject> {
    subjects.sort_by_key(|s| s.person_id);
    let mut merged: Vec<Subject> = Vec::with_capacity(subjects.len());
    for s in subjects {
        match merged.last_mut() {
            Some(last) if last.person_id == s.person_id => last.changes.extend(s.changes),
            _ => merged.push(s),
        }
    }
    merged
}
