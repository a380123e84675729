//! Compliance cards: replacing one person's card, and bulk updates of one
//! half (authorization or source) for many people at once, set-based.

use std::collections::HashSet;

use chrono::NaiveDate;
use entity::person;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait,
    IdenStatic, Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait, TryIntoModel, Value,
};
use uuid::Uuid;

use super::authorize;
use super::people::{CardRow, filter_condition, json_fields, lock_person, to_person};
use crate::audit::{self, Action, AuditEvent, FieldChange, NewEvent, Subject};
use crate::auth::{Caller, Permission};
use crate::db::{
    Columns, Db, FromRow, Skip, WriteTxn, query_all_as, query_json_array, query_one_as, uuid_in,
    uuid_json,
};
use crate::domain::{
    Authorization, AuthorizationType, ComplianceCard, PeopleFilter, Person, Source, SourceType,
};
use crate::error::{Error, Result};

/// Ids per `IN (…)` list, well under both backends' bind-parameter limits.
const IDS_PER_STATEMENT: usize = 5_000;

/// The authorization half of a card, as given by a client.
#[derive(Clone, Debug, Default)]
pub struct AuthorizationInput {
    pub authorization_type: Option<AuthorizationType>,
    pub authorization_other: Option<String>,
    pub consent_date: Option<NaiveDate>,
    pub processing_purpose: Option<String>,
}

/// The source half of a card, as given by a client.
#[derive(Clone, Debug, Default)]
pub struct SourceInput {
    pub source_type: Option<SourceType>,
    pub source_other: Option<String>,
}

/// A whole card, as given by a client.
#[derive(Clone, Debug, Default)]
pub struct CardInput {
    pub authorization: AuthorizationInput,
    pub source: SourceInput,
}

impl AuthorizationInput {
    /// Validates into an authorization; `None` when no type is given (and
    /// then no detail may be given either).
    pub fn parse(&self) -> Result<Option<Authorization>> {
        match self.authorization_type {
            Some(kind) => Authorization::new(
                kind,
                self.consent_date,
                self.processing_purpose.as_deref(),
                self.authorization_other.as_deref(),
                crate::time::today(),
            )
            .map(Some),
            None => {
                for (field, present) in [
                    ("consentDate", self.consent_date.is_some()),
                    ("processingPurpose", self.processing_purpose.is_some()),
                    ("authorizationOther", self.authorization_other.is_some()),
                ] {
                    if present {
                        return Err(Error::bad_input(
                            field,
                            format!("{field} needs an authorizationType"),
                        ));
                    }
                }
                Ok(None)
            }
        }
    }
}

impl SourceInput {
    /// Validates into a source; `None` when no type is given.
    pub fn parse(&self) -> Result<Option<Source>> {
        match self.source_type {
            Some(kind) => Source::new(kind, self.source_other.as_deref()).map(Some),
            None if self.source_other.is_some() => Err(Error::bad_input(
                "sourceOther",
                "sourceOther needs a sourceType",
            )),
            None => Ok(None),
        }
    }
}

impl CardInput {
    /// Validates both halves into a card.
    pub fn parse(&self) -> Result<ComplianceCard> {
        Ok(ComplianceCard {
            authorization: self.authorization.parse()?,
            source: self.source.parse()?,
        })
    }
}

fn authorization_columns(a: Option<&Authorization>) -> [(person::Column, Value); 4] {
    [
        (
            person::Column::AuthorizationType,
            a.map(|a| a.kind().as_str().to_owned()).into(),
        ),
        (
            person::Column::AuthorizationOther,
            a.and_then(|a| a.other()).map(str::to_owned).into(),
        ),
        (
            person::Column::ConsentDate,
            a.and_then(|a| a.consent_date()).into(),
        ),
        (
            person::Column::ProcessingPurpose,
            a.and_then(|a| a.processing_purpose())
                .map(str::to_owned)
                .into(),
        ),
    ]
}

fn source_columns(s: Option<&Source>) -> [(person::Column, Value); 2] {
    [
        (
            person::Column::SourceType,
            s.map(|s| s.kind().as_str().to_owned()).into(),
        ),
        (
            person::Column::SourceOther,
            s.and_then(|s| s.other()).map(str::to_owned).into(),
        ),
    ]
}

/// Writes the authorization half into a row.
pub(crate) fn set_authorization(row: &mut person::ActiveModel, a: Option<&Authorization>) {
    for (col, value) in authorization_columns(a) {
        row.set(col, value);
    }
}

/// Writes the source half into a row.
pub(crate) fn set_source(row: &mut person::ActiveModel, s: Option<&Source>) {
    for (col, value) in source_columns(s) {
        row.set(col, value);
    }
}

fn card_changes(before: &ComplianceCard, after: &ComplianceCard) -> Vec<FieldChange> {
    let mut changes =
        FieldChange::diff(before.authorization_values(), &after.authorization_values());
    changes.extend(FieldChange::diff(
        before.source_values(),
        &after.source_values(),
    ));
    changes
}

/// A card's columns and values.
fn card_columns(card: &ComplianceCard) -> impl Iterator<Item = (person::Column, Value)> {
    authorization_columns(card.authorization.as_ref())
        .into_iter()
        .chain(source_columns(card.source.as_ref()))
}

/// Replaces the card of person `id` in `txn`; returns the card it had, the
/// row as stored, and on SQLite the UPDATE, for the caller to run with its
/// audit event ([`audit::append_after`]). On PostgreSQL one statement locks
/// the row, reads its card and updates it (a card edit is otherwise a round
/// trip longer than the plain UPDATE); SQLite's write transaction already
/// excludes other writers, so there the row is read, then only the columns
/// that change are updated (SQLite rewrites the index entries of every
/// column set, changed or not), and the row as stored is the row read with
/// those columns changed.
async fn replace_card(
    txn: &WriteTxn,
    id: Uuid,
    card: &ComplianceCard,
) -> Result<(ComplianceCard, person::Model, Option<sea_orm::Statement>)> {
    let updated_at = (person::Column::UpdatedAt, crate::time::now().into());
    let backend = txn.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        let locked = lock_person(&**txn, id).await?;
        let before = to_person(locked.clone())?.card;
        let mut stored = person::ActiveModel::from(locked);
        let mut row = person::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(id),
            ..Default::default()
        };
        let changed = card_columns(card)
            .zip(card_columns(&before))
            .filter(|((_, value), (_, old))| value != old)
            .map(|(new, _)| new);
        for (col, value) in changed.chain([updated_at]) {
            stored.set(col, value.clone());
            row.set(col, value);
        }
        let update = person::Entity::update_many()
            .set(row)
            .filter(person::Column::Id.eq(id))
            .build(backend);
        return Ok((before, stored.try_into_model()?, Some(update)));
    }
    let columns = card_columns(card).chain([updated_at]);
    let (sets, mut values): (Vec<String>, Vec<Value>) = columns
        .enumerate()
        .map(|(i, (col, value))| (format!("{} = ${}", col.as_str(), i + 2), value))
        .unzip();
    values.insert(0, id.into());
    let before: Vec<String> = CardRow::COLUMNS
        .iter()
        .map(|c| format!("before.{0} AS before_{0}", c.as_str()))
        .collect();
    let stored: Vec<String> = person::Column::iter()
        .map(|c| format!("person.{}", c.as_str()))
        .collect();
    let sql = format!(
        "UPDATE person SET {} FROM (SELECT {} FROM person WHERE id = $1 FOR UPDATE) AS before \
         WHERE person.id = before.id RETURNING {}, {}",
        sets.join(", "),
        CardRow::COLUMNS.map(|c| c.as_str()).join(", "),
        stored.join(", "),
        before.join(", ")
    );
    let Replaced(stored, before) = query_one_as(
        &**txn,
        sea_orm::Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values),
    )
    .await?
    .ok_or_else(|| Error::person_not_found(id))?;
    Ok((before.card()?, stored, None))
}

/// The row `replace_card` returns on PostgreSQL: the person as stored, then
/// the card columns it had.
struct Replaced(person::Model, CardRow);

impl FromRow for Replaced {
    fn from_row(row: &impl Columns) -> std::result::Result<Self, sea_orm::sqlx::Error> {
        let stored = person::Model::from_row(row)?;
        let before = CardRow::from_row(&Skip(row, person::Column::iter().count()))?;
        Ok(Replaced(stored, before))
    }
}

/// Replaces a person's whole compliance card (`COMPLIANCE_CARD_UPDATED`).
#[tracing::instrument(skip(db, caller, input))]
pub async fn update_compliance_card(
    db: &Db,
    caller: &Caller,
    person_id: Uuid,
    input: &CardInput,
) -> Result<Person> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::ComplianceCardUpdated,
        &[person_id],
    )
    .await?;
    let card = input.parse()?;

    let txn = db.begin_write().await?;
    let (before, stored, update) = replace_card(&txn, person_id, &card).await?;
    let changes = card_changes(&before, &card);
    audit::append_after(
        &txn,
        update,
        NewEvent::success(caller, Action::ComplianceCardUpdated).subject(person_id, changes),
    )
    .await?;
    txn.commit().await?;
    to_person(stored)
}

/// Which people a bulk update applies to.
#[derive(Clone, Debug)]
pub enum Selection {
    Ids(Vec<Uuid>),
    Filter(PeopleFilter),
}

/// What a bulk update did.
#[derive(Clone, Debug)]
pub struct BulkResult {
    pub updated_count: u64,
    /// Its audit event (chained), naming every person updated; read it with
    /// [`bulk_event`] when wanted, as it can be large.
    pub event_id: Uuid,
}

/// The audit event of a bulk update the caller has just made. No audit-read
/// permission is needed: it describes the caller's own change.
pub async fn bulk_event(db: &Db, result: &BulkResult) -> Result<AuditEvent> {
    audit::event(db, result.event_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("audit event {} is not chained yet", result.event_id).into())
}

/// The half of the card a bulk update replaces.
enum Half {
    Authorization(Option<Authorization>),
    Source(Option<Source>),
}

/// Sets the authorization half of every selected person's card
/// (`AUTHORIZATION_BULK_UPDATED`); all or nothing.
pub async fn bulk_update_authorization(
    db: &Db,
    caller: &Caller,
    selection: &Selection,
    input: &AuthorizationInput,
) -> Result<BulkResult> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::AuthorizationBulkUpdated,
        selected_ids(selection),
    )
    .await?;
    if input.authorization_type.is_none() {
        return Err(Error::bad_input(
            "authorizationType",
            "authorizationType is required",
        ));
    }
    bulk_update(
        db,
        caller,
        selection,
        Action::AuthorizationBulkUpdated,
        Half::Authorization(input.parse()?),
    )
    .await
}

/// Sets the source half of every selected person's card
/// (`SOURCE_BULK_UPDATED`); all or nothing.
pub async fn bulk_update_source(
    db: &Db,
    caller: &Caller,
    selection: &Selection,
    input: &SourceInput,
) -> Result<BulkResult> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::SourceBulkUpdated,
        selected_ids(selection),
    )
    .await?;
    if input.source_type.is_none() {
        return Err(Error::bad_input("sourceType", "sourceType is required"));
    }
    bulk_update(
        db,
        caller,
        selection,
        Action::SourceBulkUpdated,
        Half::Source(input.parse()?),
    )
    .await
}

fn selected_ids(selection: &Selection) -> &[Uuid] {
    match selection {
        Selection::Ids(ids) => ids,
        Selection::Filter(_) => &[],
    }
}

/// Updates the selected people a chunk at a time inside one transaction:
/// each chunk's rows are locked (in id order, so two bulk updates over
/// overlapping people cannot deadlock), updated, and their audit rows
/// written, so memory stays flat whatever the number of people.
#[tracing::instrument(skip(db, caller, selection, half))]
async fn bulk_update(
    db: &Db,
    caller: &Caller,
    selection: &Selection,
    action: Action,
    half: Half,
) -> Result<BulkResult> {
    let txn = db.begin_write().await?;
    let details = match selection {
        Selection::Ids(_) => serde_json::json!({ "selection": "ids" }),
        Selection::Filter(f) => serde_json::json!({ "selection": "filter", "filter": f }),
    };
    let mut event =
        audit::EventWriter::begin(&txn, NewEvent::success(caller, action).details(details)).await?;
    let mut updated_count = 0u64;
    match selection {
        Selection::Ids(ids) => {
            let mut seen = HashSet::with_capacity(ids.len());
            let mut ids: Vec<Uuid> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
            drop(seen);
            ids.sort_unstable();
            for (i, chunk) in ids.chunks(IDS_PER_STATEMENT).enumerate() {
                let people = cards_by_id(&txn, chunk).await?;
                if people.rows.len() < chunk.len() {
                    let found: HashSet<Uuid> = people.rows.iter().map(|r| r.id).collect();
                    let rest = &ids[((i + 1) * IDS_PER_STATEMENT).min(ids.len())..];
                    return Err(not_found(&txn, chunk, &found, rest).await?);
                }
                updated_count += apply(&txn, &mut event, people, &half).await?;
            }
        }
        Selection::Filter(filter) => {
            let mut after = None;
            loop {
                let people = cards(&txn, filter_condition(filter), after).await?;
                let Some(last) = people.rows.last() else {
                    break;
                };
                after = Some(last.id);
                let full = people.rows.len() == IDS_PER_STATEMENT;
                updated_count += apply(&txn, &mut event, people, &half).await?;
                if !full {
                    break;
                }
            }
        }
    }
    let event = event.finish().await?;
    txn.commit().await?;
    Ok(BulkResult {
        updated_count,
        event_id: event.id(),
    })
}

/// The cards of a chunk of people a bulk update reads, then updates.
struct Chunk {
    /// In id order.
    rows: Vec<CardRow>,
    /// SQLite: the rowid of each of `rows`, so that the UPDATE goes to each
    /// row directly instead of through the id index again (for a bulk
    /// update of 100,000 people, half a billion instructions fewer).
    rowids: Option<Vec<i64>>,
}

/// Up to [`IDS_PER_STATEMENT`] people matching `condition` with ids after
/// `after`, in id order, locked for update on PostgreSQL (SQLite's write
/// transaction already excludes other writers).
async fn cards(txn: &WriteTxn, condition: Condition, after: Option<Uuid>) -> Result<Chunk> {
    let mut q = person::Entity::find()
        .select_only()
        .columns(CardRow::COLUMNS)
        .filter(condition)
        .order_by_asc(person::Column::Id)
        .limit(IDS_PER_STATEMENT as u64);
    if let Some(after) = after {
        q = q.filter(person::Column::Id.gt(after));
    }
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        q = q.lock_exclusive();
        return Ok(Chunk {
            rows: query_all_as(&**txn, q.build(DatabaseBackend::Postgres)).await?,
            rowids: None,
        });
    }
    let select = q
        .column_as(Expr::cust("rowid"), "row_id")
        .build(DatabaseBackend::Sqlite);
    let sql = format!(
        "SELECT json_group_array(json_array(row_id, json_array({}))) FROM ({})",
        json_fields(&CardRow::COLUMNS, ""),
        select.sql
    );
    cards_as_json(txn, sea_orm::Statement { sql, ..select }).await
}

/// The people of `ids` (existing ones; a bulk update's chunk), as
/// [`cards`] reads them. On SQLite the statement walks the id list and
/// looks each person up, where `id IN (…)` would first copy the list into a
/// temporary index.
async fn cards_by_id(txn: &WriteTxn, ids: &[Uuid]) -> Result<Chunk> {
    let backend = txn.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        return cards(
            txn,
            Condition::all().add(person::Column::Id.is_in(ids.iter().copied())),
            None,
        )
        .await;
    }
    let sql = format!(
        "SELECT json_group_array(json_array(p.rowid, json_array({}))) \
         FROM json_each(?) AS j JOIN person AS p ON p.id = unhex(j.value)",
        json_fields(&CardRow::COLUMNS, "p.")
    );
    cards_as_json(
        txn,
        sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [uuid_json(ids.iter().copied()).into()],
        ),
    )
    .await
}

/// The chunk `select` returns on SQLite: one JSON array of `[rowid, [card
/// fields]]` pairs that SQLite builds ([`query_json_array`]; B4 on SQLite:
/// 1.12 s → 0.91 s for 100,000 people).
async fn cards_as_json(txn: &WriteTxn, select: sea_orm::Statement) -> Result<Chunk> {
    let mut pairs: Vec<(i64, CardRow)> = query_json_array(&**txn, select).await?;
    // Both statements read in id order (the sorted chunk, or the sorted
    // subquery); this only makes sure of it (an already sorted chunk costs
    // one pass).
    pairs.sort_unstable_by_key(|(_, r)| r.id);
    let (rowids, rows) = pairs.into_iter().unzip();
    Ok(Chunk {
        rows,
        rowids: Some(rowids),
    })
}

/// `NOT_FOUND` naming the selected ids that do not exist: those of `chunk`
/// not `found`, and those of the `rest` not looked at yet.
async fn not_found(
    txn: &WriteTxn,
    chunk: &[Uuid],
    found: &HashSet<Uuid>,
    rest: &[Uuid],
) -> Result<Error> {
    let mut missing: Vec<Uuid> = chunk
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect();
    for chunk in rest.chunks(IDS_PER_STATEMENT) {
        let found: HashSet<Uuid> = person::Entity::find()
            .select_only()
            .column(person::Column::Id)
            .filter(uuid_in(
                txn.get_database_backend(),
                person::Column::Id,
                chunk.iter().copied(),
            ))
            .into_tuple::<Uuid>()
            .all(&**txn)
            .await?
            .into_iter()
            .collect();
        missing.extend(chunk.iter().copied().filter(|id| !found.contains(id)));
    }
    let shown: Vec<String> = missing.iter().take(20).map(Uuid::to_string).collect();
    Ok(Error::NotFound {
        message: format!(
            "{} selected people not found: {}{}",
            missing.len(),
            shown.join(", "),
            if missing.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        ),
        ids: missing,
    })
}

/// The people of `rows`, each with `changes` from their card as it was.
fn subjects(
    rows: Vec<CardRow>,
    changes: impl Fn(&ComplianceCard) -> Vec<FieldChange>,
) -> Result<Vec<Subject>> {
    rows.into_iter()
        .map(|row| {
            let person_id = row.id;
            let before = row.card()?;
            Ok(Subject {
                person_id,
                changes: changes(&before),
            })
        })
        .collect()
}

/// Sets `half` on the people of `chunk` and writes their before/after
/// values to `event`; returns how many.
async fn apply(
    txn: &WriteTxn,
    event: &mut audit::EventWriter<'_>,
    chunk: Chunk,
    half: &Half,
) -> Result<u64> {
    let Chunk { rows, rowids } = chunk;
    let columns: Vec<(person::Column, Value)> = match half {
        Half::Authorization(a) => authorization_columns(a.as_ref()).into(),
        Half::Source(s) => source_columns(s.as_ref()).into(),
    };
    let mut update = person::Entity::update_many()
        .col_expr(person::Column::UpdatedAt, Expr::value(crate::time::now()))
        .filter(match rowids {
            Some(rowids) => Expr::cust_with_values(
                "rowid IN (SELECT value FROM json_each(?))",
                [serde_json::to_string(&rowids).map_err(anyhow::Error::from)?],
            ),
            None => person::Column::Id.is_in(rows.iter().map(|r| r.id)),
        });
    for (col, value) in columns {
        update = update.col_expr(col, Expr::value(value));
    }
    update.exec(&**txn).await?;

    // The new values are the same for every person: made once a chunk.
    let subjects = match half {
        Half::Authorization(a) => {
            let after = ComplianceCard {
                authorization: a.clone(),
                source: None,
            }
            .authorization_values();
            subjects(rows, |before| {
                FieldChange::diff(before.authorization_values(), &after)
            })?
        }
        Half::Source(s) => {
            let after = ComplianceCard {
                authorization: None,
                source: s.clone(),
            }
            .source_values();
            subjects(rows, |before| {
                FieldChange::diff(before.source_values(), &after)
            })?
        }
    };
    event.people(&subjects).await?;
    Ok(subjects.len() as u64)
}
