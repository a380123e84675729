//! People: reading, listing with the `PeopleFilter`, creating and editing
//! contact fields.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use entity::person;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait,
    IdenStatic, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
};
use uuid::Uuid;

use super::compliance::{CardInput, set_authorization, set_source};
use super::suppression::Suppression;
use super::{Page, authorize, require};
use crate::audit::{self, Action, FieldChange, NewEvent};
use crate::auth::{Caller, Permission};
use crate::db::{Columns, Db, FromRow};
use crate::domain::{
    Authorization, AuthorizationType, ComplianceCard, Contact, Email, PeopleFilter, Person, Source,
    SourceType, Subscription, Text,
};
use crate::error::{DbResultExt, Error, Result};

/// Contact fields as given by a client; blank means absent.
#[derive(Clone, Debug, Default)]
pub struct ContactInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub other: Option<String>,
    pub salesforce_id: Option<String>,
    pub facebook: Option<String>,
    pub twitter: Option<String>,
    pub linkedin: Option<String>,
}

/// A partial edit of contact fields: `None` keeps a field, `Some(None)`
/// clears it, `Some(Some(v))` sets it.
#[derive(Clone, Debug, Default)]
pub struct ContactPatch {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub other: Option<Option<String>>,
    pub salesforce_id: Option<Option<String>>,
    pub facebook: Option<Option<String>>,
    pub twitter: Option<Option<String>>,
    pub linkedin: Option<Option<String>>,
}

fn text(field: &str, raw: Option<&str>) -> Result<Option<String>> {
    Ok(Text::parse_optional(field, raw)?.map(String::from))
}

fn email(raw: Option<&str>) -> Result<Option<Email>> {
    match raw {
        Some(s) if !s.trim().is_empty() => Email::parse("email", s).map(Some),
        _ => Ok(None),
    }
}

impl ContactInput {
    /// Validates every field into a [`Contact`].
    pub fn parse(&self) -> Result<Contact> {
        Ok(Contact {
            first_name: text("firstName", self.first_name.as_deref())?,
            last_name: text("lastName", self.last_name.as_deref())?,
            company: text("company", self.company.as_deref())?,
            title: text("title", self.title.as_deref())?,
            email: email(self.email.as_deref())?,
            phone: text("phone", self.phone.as_deref())?,
            website: text("website", self.website.as_deref())?,
            other: text("other", self.other.as_deref())?,
            salesforce_id: text("salesforceId", self.salesforce_id.as_deref())?,
            facebook: text("facebook", self.facebook.as_deref())?,
            twitter: text("twitter", self.twitter.as_deref())?,
            linkedin: text("linkedin", self.linkedin.as_deref())?,
        })
    }
}

impl ContactPatch {
    /// `current` with this patch applied, every new value validated.
    pub fn apply(&self, current: &Contact) -> Result<Contact> {
        fn field(
            name: &str,
            patch: &Option<Option<String>>,
            current: &Option<String>,
        ) -> Result<Option<String>> {
            match patch {
                None => Ok(current.clone()),
                Some(v) => text(name, v.as_deref()),
            }
        }
        Ok(Contact {
            first_name: field("firstName", &self.first_name, &current.first_name)?,
            last_name: field("lastName", &self.last_name, &current.last_name)?,
            company: field("company", &self.company, &current.company)?,
            title: field("title", &self.title, &current.title)?,
            email: match &self.email {
                None => current.email.clone(),
                Some(v) => email(v.as_deref())?,
            },
            phone: field("phone", &self.phone, &current.phone)?,
            website: field("website", &self.website, &current.website)?,
            other: field("other", &self.other, &current.other)?,
            salesforce_id: field("salesforceId", &self.salesforce_id, &current.salesforce_id)?,
            facebook: field("facebook", &self.facebook, &current.facebook)?,
            twitter: field("twitter", &self.twitter, &current.twitter)?,
            linkedin: field("linkedin", &self.linkedin, &current.linkedin)?,
        })
    }
}

/// Writes contact fields into a row.
pub(crate) fn set_contact(row: &mut person::ActiveModel, c: &Contact) {
    row.first_name = Set(c.first_name.clone());
    row.last_name = Set(c.last_name.clone());
    row.company = Set(c.company.clone());
    row.title = Set(c.title.clone());
    row.email = Set(c.email.as_ref().map(|e| e.as_str().to_owned()));
    row.email_normalized = Set(c.email.as_ref().map(|e| e.normalized().to_owned()));
    row.phone = Set(c.phone.clone());
    row.website = Set(c.website.clone());
    row.other = Set(c.other.clone());
    row.salesforce_id = Set(c.salesforce_id.clone());
    row.facebook = Set(c.facebook.clone());
    row.twitter = Set(c.twitter.clone());
    row.linkedin = Set(c.linkedin.clone());
}

/// A new, subscribed person's row.
pub(crate) fn new_row(
    id: Uuid,
    contact: &Contact,
    card: &ComplianceCard,
    now: DateTime<Utc>,
) -> person::ActiveModel {
    let mut row = person::ActiveModel {
        id: Set(id),
        unsubscribed: Set(false),
        unsubscribed_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    set_contact(&mut row, contact);
    set_authorization(&mut row, card.authorization.as_ref());
    set_source(&mut row, card.source.as_ref());
    row
}

/// The compliance-card columns of a person row, for work that needs only
/// the card (bulk updates read 100,000 of these, not whole rows). Read
/// from a row, or on SQLite from a JSON array of the fields in order.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CardRow {
    pub id: Uuid,
    pub authorization_type: Option<String>,
    pub authorization_other: Option<String>,
    pub consent_date: Option<chrono::NaiveDate>,
    pub processing_purpose: Option<String>,
    pub source_type: Option<String>,
    pub source_other: Option<String>,
}

impl CardRow {
    /// The columns to select.
    pub(crate) const COLUMNS: [person::Column; 7] = [
        person::Column::Id,
        person::Column::AuthorizationType,
        person::Column::AuthorizationOther,
        person::Column::ConsentDate,
        person::Column::ProcessingPurpose,
        person::Column::SourceType,
        person::Column::SourceOther,
    ];

    /// The card, checked as it was stored; a damaged row is `INTERNAL`.
    pub(crate) fn card(self) -> Result<ComplianceCard> {
        let id = self.id;
        let damaged = || Error::from(anyhow::anyhow!("person {id} has a damaged compliance card"));
        let authorization = match self.authorization_type.as_deref() {
            None => None,
            Some(t) => Some(
                Authorization::from_stored(
                    AuthorizationType::parse(t).ok_or_else(damaged)?,
                    self.consent_date,
                    self.processing_purpose,
                    self.authorization_other,
                )
                .ok_or_else(damaged)?,
            ),
        };
        let source = match self.source_type.as_deref() {
            None => None,
            Some(t) => Some(
                Source::from_stored(SourceType::parse(t).ok_or_else(damaged)?, self.source_other)
                    .ok_or_else(damaged)?,
            ),
        };
        Ok(ComplianceCard {
            authorization,
            source,
        })
    }
}

/// The card columns in the order of [`CardRow::COLUMNS`].
impl FromRow for CardRow {
    fn from_row(row: &impl Columns) -> std::result::Result<Self, sea_orm::sqlx::Error> {
        Ok(CardRow {
            id: row.get(0)?,
            authorization_type: row.get(1)?,
            authorization_other: row.get(2)?,
            consent_date: row.get(3)?,
            processing_purpose: row.get(4)?,
            source_type: row.get(5)?,
            source_other: row.get(6)?,
        })
    }
}

/// A person row as `person::Entity::find()` selects it: every column, in
/// the order of `person::Column`.
impl FromRow for person::Model {
    fn from_row(row: &impl Columns) -> std::result::Result<Self, sea_orm::sqlx::Error> {
        use person::Column as C;
        Ok(person::Model {
            id: row.get(C::Id as usize)?,
            first_name: row.get(C::FirstName as usize)?,
            last_name: row.get(C::LastName as usize)?,
            company: row.get(C::Company as usize)?,
            title: row.get(C::Title as usize)?,
            email: row.get(C::Email as usize)?,
            email_normalized: row.get(C::EmailNormalized as usize)?,
            phone: row.get(C::Phone as usize)?,
            website: row.get(C::Website as usize)?,
            other: row.get(C::Other as usize)?,
            salesforce_id: row.get(C::SalesforceId as usize)?,
            facebook: row.get(C::Facebook as usize)?,
            twitter: row.get(C::Twitter as usize)?,
            linkedin: row.get(C::Linkedin as usize)?,
            authorization_type: row.get(C::AuthorizationType as usize)?,
            authorization_other: row.get(C::AuthorizationOther as usize)?,
            consent_date: row.get(C::ConsentDate as usize)?,
            processing_purpose: row.get(C::ProcessingPurpose as usize)?,
            source_type: row.get(C::SourceType as usize)?,
            source_other: row.get(C::SourceOther as usize)?,
            unsubscribed: row.get(C::Unsubscribed as usize)?,
            unsubscribed_at: row.get(C::UnsubscribedAt as usize)?,
            created_at: row.get(C::CreatedAt as usize)?,
            updated_at: row.get(C::UpdatedAt as usize)?,
        })
    }
}

/// Maps a stored row to a [`Person`].
pub(crate) fn to_person(m: person::Model) -> Result<Person> {
    let card = CardRow {
        id: m.id,
        authorization_type: m.authorization_type,
        authorization_other: m.authorization_other,
        consent_date: m.consent_date,
        processing_purpose: m.processing_purpose,
        source_type: m.source_type,
        source_other: m.source_other,
    }
    .card()?;
    Ok(Person {
        id: m.id,
        contact: Contact {
            first_name: m.first_name,
            last_name: m.last_name,
            company: m.company,
            title: m.title,
            email: m.email.map(Email::from_stored),
            phone: m.phone,
            website: m.website,
            other: m.other,
            salesforce_id: m.salesforce_id,
            facebook: m.facebook,
            twitter: m.twitter,
            linkedin: m.linkedin,
        },
        card,
        subscription: Subscription {
            unsubscribed: m.unsubscribed,
            unsubscribed_at: m.unsubscribed_at,
        },
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// `columns` as SQLite's `json_array` arguments, each named after
/// `prefix`: the id as 32 hex digits (which `Uuid` reads as it reads a
/// hyphenated one), the others as stored. For reads that come back as one
/// JSON array ([`crate::db::query_json_array`]) into a type whose fields
/// are `columns`, in order.
pub(crate) fn json_fields(columns: &[person::Column], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| match c {
            person::Column::Id => format!("hex({prefix}{})", c.as_str()),
            _ => format!("{prefix}{}", c.as_str()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQL condition for a [`PeopleFilter`].
pub(crate) fn filter_condition(f: &PeopleFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(search) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let escaped = search
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let like = |col: person::Column| {
            Expr::expr(Func::lower(Expr::col(col)))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        c = c.add(
            Condition::any()
                .add(like(person::Column::FirstName))
                .add(like(person::Column::LastName))
                .add(like(person::Column::EmailNormalized))
                .add(like(person::Column::Company)),
        );
    }
    if let Some(types) = &f.authorization_types {
        c = c.add(person::Column::AuthorizationType.is_in(types.iter().map(|t| t.as_str())));
    }
    if let Some(types) = &f.source_types {
        c = c.add(person::Column::SourceType.is_in(types.iter().map(|t| t.as_str())));
    }
    if let Some(u) = f.unsubscribed {
        c = c.add(person::Column::Unsubscribed.eq(u));
    }
    match f.missing_authorization {
        Some(true) => c = c.add(person::Column::AuthorizationType.is_null()),
        Some(false) => c = c.add(person::Column::AuthorizationType.is_not_null()),
        None => {}
    }
    if let Some(after) = f.created_after {
        c = c.add(person::Column::CreatedAt.gte(after));
    }
    if let Some(before) = f.created_before {
        c = c.add(person::Column::CreatedAt.lt(before));
    }
    c
}

/// Loads a person inside a write transaction, locking the row on
/// PostgreSQL; `NOT_FOUND` when absent.
pub(crate) async fn lock_person<C: ConnectionTrait>(txn: &C, id: Uuid) -> Result<person::Model> {
    let stmt = person_by_id(txn.get_database_backend(), id, Lock::ForUpdate);
    crate::db::query_one_as(txn, stmt)
        .await?
        .ok_or_else(|| Error::person_not_found(id))
}

fn duplicate_email(contact: &Contact) -> impl FnOnce() -> Error + '_ {
    move || {
        Error::Conflict(format!(
            "another person already has the email {}",
            contact.email.as_ref().map_or("", |e| e.as_str())
        ))
    }
}

/// Whether a read of a person locks the row (PostgreSQL; SQLite's write
/// transaction already excludes other writers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    None,
    ForUpdate,
}

/// `person::Entity::find_by_id(id)` as a statement (`FOR UPDATE` with
/// [`Lock::ForUpdate`] on PostgreSQL). SeaORM builds its SQL once per
/// backend and lock — the text does not depend on the id — and each call
/// binds its id.
fn person_by_id(backend: DatabaseBackend, id: Uuid, lock: Lock) -> Statement {
    static SQL: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
    let postgres = backend == DatabaseBackend::Postgres;
    let locked = postgres && lock == Lock::ForUpdate;
    let sql = SQL[usize::from(postgres) * 2 + usize::from(locked)].get_or_init(|| {
        let mut q = person::Entity::find_by_id(Uuid::nil());
        if locked {
            q = q.lock_exclusive();
        }
        q.build(backend).sql
    });
    Statement::from_sql_and_values(backend, sql.clone(), [id.into()])
}

/// One person, or `None`.
#[tracing::instrument(skip(db, caller))]
pub async fn get_person(db: &Db, caller: &Caller, id: Uuid) -> Result<Option<Person>> {
    require(caller, Permission::ReadPeople)?;
    db.read_one::<person::Model>(&person_by_id(db.backend(), id, Lock::None))
        .await?
        .map(to_person)
        .transpose()
}

/// A page of people matching `filter`, in id (creation) order, after the
/// person `after` when given.
#[tracing::instrument(skip(db, caller))]
pub async fn list_people(
    db: &Db,
    caller: &Caller,
    filter: &PeopleFilter,
    first: u64,
    after: Option<Uuid>,
) -> Result<Page<Person>> {
    require(caller, Permission::ReadPeople)?;
    let mut q = person::Entity::find().filter(filter_condition(filter));
    if let Some(after) = after {
        q = q.filter(person::Column::Id.gt(after));
    }
    let stmt = q
        .order_by_asc(person::Column::Id)
        .limit(first + 1)
        .build(db.backend());
    let mut rows = db.read::<person::Model>(&stmt).await?;
    let has_next = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok(Page {
        items: rows.into_iter().map(to_person).collect::<Result<_>>()?,
        has_next,
    })
}

/// How many people match `filter`.
#[tracing::instrument(skip(db, caller))]
pub async fn count_people(db: &Db, caller: &Caller, filter: &PeopleFilter) -> Result<u64> {
    require(caller, Permission::ReadPeople)?;
    Ok(person::Entity::find()
        .filter(filter_condition(filter))
        .count(db.conn())
        .await?)
}

/// Creates a person with an optional compliance card (`PERSON_CREATED`).
/// A suppressed (erased) email is a `CONFLICT` unless an admin overrides it
/// with `override_reason`, which the audit event records.
#[tracing::instrument(skip(db, caller, suppression, contact, card, override_reason))]
pub async fn create_person(
    db: &Db,
    caller: &Caller,
    suppression: &Suppression,
    contact: &ContactInput,
    card: Option<&CardInput>,
    override_reason: Option<&str>,
) -> Result<Person> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::PersonCreated,
        &[],
    )
    .await?;
    if override_reason.is_some() {
        authorize(
            db,
            caller,
            Permission::OverrideSuppression,
            Action::PersonCreated,
            &[],
        )
        .await?;
    }
    let override_reason = override_reason
        .map(|r| Text::parse("overrideReason", r))
        .transpose()?;
    let contact = contact.parse()?;
    let card = card.map(CardInput::parse).transpose()?.unwrap_or_default();
    let id = Uuid::now_v7();
    let row = new_row(id, &contact, &card, crate::time::now());

    let txn = db.begin_write().await?;
    let overridden = match &override_reason {
        None => {
            suppression.check(&*txn, contact.email.as_ref()).await?;
            false
        }
        Some(_) => match &contact.email {
            Some(email) => suppression.contains(&*txn, email).await?,
            None => false,
        },
    };
    let stored = person::Entity::insert(row)
        .exec_with_returning(&*txn)
        .await
        .on_unique(duplicate_email(&contact))?;
    let person = to_person(stored)?;
    let mut changes = FieldChange::diff(
        Contact::default().audit_values(),
        &person.contact.audit_values(),
    );
    changes.extend(FieldChange::diff(
        ComplianceCard::default().authorization_values(),
        &person.card.authorization_values(),
    ));
    changes.extend(FieldChange::diff(
        ComplianceCard::default().source_values(),
        &person.card.source_values(),
    ));
    let mut event = NewEvent::success(caller, Action::PersonCreated).subject(id, changes);
    if overridden {
        event = event
            .reason(override_reason.map(String::from))
            .details(serde_json::json!({ "suppressionOverridden": true }));
    }
    audit::append(&txn, event).await?;
    txn.commit().await?;
    Ok(person)
}

/// Edits contact fields (`PERSON_UPDATED`). A new email may not be a
/// suppressed one.
#[tracing::instrument(skip(db, caller, suppression, patch))]
pub async fn update_person(
    db: &Db,
    caller: &Caller,
    suppression: &Suppression,
    id: Uuid,
    patch: &ContactPatch,
) -> Result<Person> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::PersonUpdated,
        &[id],
    )
    .await?;
    // Validate the new values before touching the database.
    patch.apply(&Contact::default())?;

    let txn = db.begin_write().await?;
    let before = to_person(lock_person(&*txn, id).await?)?;
    let contact = patch.apply(&before.contact)?;
    if contact.email != before.contact.email {
        suppression.check(&*txn, contact.email.as_ref()).await?;
    }
    let changes = FieldChange::diff(before.contact.audit_values(), &contact.audit_values());
    let mut row = person::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(id),
        updated_at: Set(crate::time::now()),
        ..Default::default()
    };
    set_contact(&mut row, &contact);
    let stored = person::Entity::update(row)
        .exec(&*txn)
        .await
        .on_unique(duplicate_email(&contact))?;
    audit::append(
        &txn,
        NewEvent::success(caller, Action::PersonUpdated).subject(id, changes),
    )
    .await?;
    txn.commit().await?;
    to_person(stored)
}

#[cfg(test)]
mod tests {
    use entity::person;
    use sea_orm::{DatabaseBackend, EntityTrait, IdenStatic, Iterable, QueryTrait};

    /// `FromRow for person::Model` reads each column at the position of its
    /// `person::Column` variant: SeaORM must select every column, in that
    /// order.
    #[test]
    fn a_person_query_selects_every_column_in_column_order() {
        for backend in [DatabaseBackend::Postgres, DatabaseBackend::Sqlite] {
            let sql = person::Entity::find().build(backend).sql;
            let list = sql
                .strip_prefix("SELECT ")
                .and_then(|s| s.split(" FROM ").next())
                .unwrap();
            let selected: Vec<&str> = list.split(", ").collect();
            let expected: Vec<String> = person::Column::iter()
                .enumerate()
                .map(|(i, c)| {
                    assert_eq!(c as usize, i);
                    format!("\"person\".\"{}\"", c.as_str())
                })
                .collect();
            assert_eq!(selected, expected);
        }
    }
}
