//! The accountability audit trail: events appended in the same transaction
//! as the change they describe, chained by SHA-256 so tampering shows, and
//! read back newest first.

mod chain;
mod chainer;
mod reader;
pub(crate) mod shred;
mod writer;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::Db;
use crate::domain::stored_enum;
use crate::error::Error;

pub use chain::{ENCODING_VERSION, GENESIS_HASH};
pub use chainer::{
    ChainTurn, background_chaining_done, chain_committed, chain_pending, chain_soon,
};
pub use reader::{EventFilter, Verification};
pub use writer::{Appended, EventWriter, append, append_after, chained};

// Every read of the trail first chains what is committed and not chained
// yet (see `chainer`), so it sees every event committed before it.

/// Events matching `filter`, newest first, older than `before_sequence`
/// when given; and whether there are more.
pub async fn list(
    db: &Db,
    filter: &EventFilter,
    first: u64,
    before_sequence: Option<i64>,
) -> Result<(Vec<AuditEvent>, bool), Error> {
    chain_pending(db).await?;
    reader::list(db.conn(), filter, first, before_sequence).await
}

/// One event by id.
pub async fn event(db: &Db, id: Uuid) -> Result<Option<AuditEvent>, Error> {
    chain_pending(db).await?;
    reader::event(db.conn(), id).await
}

/// How many events match `filter`.
pub async fn count(db: &Db, filter: &EventFilter) -> Result<u64, Error> {
    chain_pending(db).await?;
    reader::count(db.conn(), filter).await
}

/// Chains every committed event not chained yet, then recomputes the whole
/// chain and names the first event that does not verify.
pub async fn verify(db: &Db) -> Result<Verification, Error> {
    chain_pending(db).await?;
    reader::verify_chained(db.conn()).await
}

/// What an audit event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    PersonCreated,
    PersonUpdated,
    ComplianceCardUpdated,
    AuthorizationBulkUpdated,
    SourceBulkUpdated,
    Unsubscribed,
    Resubscribed,
    EmailSent,
    PersonExported,
    PeopleExported,
    PersonDataExported,
    PeopleImported,
    PersonErased,
    CrmSynced,
}

stored_enum!(Action {
    PersonCreated => "PERSON_CREATED",
    PersonUpdated => "PERSON_UPDATED",
    ComplianceCardUpdated => "COMPLIANCE_CARD_UPDATED",
    AuthorizationBulkUpdated => "AUTHORIZATION_BULK_UPDATED",
    SourceBulkUpdated => "SOURCE_BULK_UPDATED",
    Unsubscribed => "UNSUBSCRIBED",
    Resubscribed => "RESUBSCRIBED",
    EmailSent => "EMAIL_SENT",
    PersonExported => "PERSON_EXPORTED",
    PeopleExported => "PEOPLE_EXPORTED",
    PersonDataExported => "PERSON_DATA_EXPORTED",
    PeopleImported => "PEOPLE_IMPORTED",
    PersonErased => "PERSON_ERASED",
    CrmSynced => "CRM_SYNCED",
});

/// Whether the audited call went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Denied,
}

stored_enum!(Outcome {
    Success => "SUCCESS",
    Denied => "DENIED",
});

/// One field's value before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
    /// Read back only: the values were personal data of an erased person
    /// and are gone (crypto-shredded).
    #[serde(skip)]
    pub erased: bool,
}

impl FieldChange {
    /// A change of `field` from `before` to `after`.
    pub fn new(field: &str, before: Value, after: Value) -> Self {
        FieldChange {
            field: field.to_owned(),
            before,
            after,
            erased: false,
        }
    }

    /// The changes between two lists of `(field, value)` pairs, in order:
    /// only fields whose value differs (`after` is borrowed, so that one
    /// list of new values serves a bulk update's every person).
    pub fn diff<const N: usize>(
        before: [(&'static str, Value); N],
        after: &[(&'static str, Value); N],
    ) -> Vec<FieldChange> {
        before
            .into_iter()
            .zip(after)
            .filter(|((_, b), (_, a))| a != b)
            .map(|((field, before), (_, after))| FieldChange::new(field, before, after.clone()))
            .collect()
    }
}

/// A person an event names, with that person's changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    pub person_id: Uuid,
    pub changes: Vec<FieldChange>,
}

/// An event to append. Build it with [`NewEvent::success`] or
/// [`NewEvent::denied`]; the writer assigns id and time, chaining assigns
/// sequence and hashes.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub action: Action,
    pub outcome: Outcome,
    pub actor: String,
    pub actor_roles: Vec<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<Value>,
    pub subjects: Vec<Subject>,
}

impl NewEvent {
    fn by(caller: &Caller, action: Action, outcome: Outcome) -> Self {
        NewEvent {
            action,
            outcome,
            actor: caller.actor.subject.clone(),
            actor_roles: caller.actor.role_names(),
            reason: None,
            request_id: Some(caller.request_id.clone()),
            details: None,
            subjects: Vec::new(),
        }
    }

    /// A successful `action` by `caller`.
    pub fn success(caller: &Caller, action: Action) -> Self {
        Self::by(caller, action, Outcome::Success)
    }

    /// A denied attempt at `action` by `caller`, naming the people it aimed at.
    pub fn denied(caller: &Caller, action: Action, person_ids: &[Uuid]) -> Self {
        let mut event = Self::by(caller, action, Outcome::Denied);
        event.subjects = person_ids
            .iter()
            .map(|&person_id| Subject {
                person_id,
                changes: Vec::new(),
            })
            .collect();
        event
    }

    /// Names `person_id` with its `changes`.
    pub fn subject(mut self, person_id: Uuid, changes: Vec<FieldChange>) -> Self {
        self.subjects.push(Subject { person_id, changes });
        self
    }

    /// Names many people with their changes.
    pub fn subjects(mut self, subjects: impl IntoIterator<Item = Subject>) -> Self {
        self.subjects.extend(subjects);
        self
    }

    /// Records the caller's reason.
    pub fn reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }

    /// Records action-specific facts (a filter, a count).
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// A stored audit event, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub actor_roles: Vec<String>,
    pub action: Action,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<Value>,
    pub previous_hash: String,
    pub hash: String,
    pub subjects: Vec<Subject>,
}

impl AuditEvent {
    /// The people this event names, in stored order.
    pub fn person_ids(&self) -> Vec<Uuid> {
        self.subjects.iter().map(|s| s.person_id).collect()
    }
}
