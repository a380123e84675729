//! Reading the trail back (newest first, keyset-paginated) and verifying
//! the chain.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{audit_chain_head, audit_event, audit_event_person};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, RelationTrait,
};
use uuid::Uuid;

use super::chain::{GENESIS_HASH, event_hash};
use super::{Action, AuditEvent, FieldChange, Outcome, Subject};
use crate::error::Error;

/// Events checked per round trip while verifying.
const VERIFY_PAGE: u64 = 500;

/// Which events to list. Every set condition must hold.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub person_id: Option<Uuid>,
    pub actor: Option<String>,
    pub action: Option<Action>,
    pub outcome: Option<Outcome>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

impl EventFilter {
    fn condition(&self) -> Condition {
        let mut c = Condition::all();
        if let Some(id) = self.person_id {
            c = c.add(audit_event_person::Column::PersonId.eq(id));
        }
        if let Some(actor) = &self.actor {
            c = c.add(audit_event::Column::Actor.eq(actor.as_str()));
        }
        if let Some(action) = self.action {
            c = c.add(audit_event::Column::Action.eq(action.as_str()));
        }
        if let Some(outcome) = self.outcome {
            c = c.add(audit_event::Column::Outcome.eq(outcome.as_str()));
        }
        if let Some(from) = self.from {
            c = c.add(audit_event::Column::OccurredAt.gte(from));
        }
        if let Some(to) = self.to {
            c = c.add(audit_event::Column::OccurredAt.lt(to));
        }
        c
    }

    fn select(&self) -> sea_orm::Select<audit_event::Entity> {
        // Only chained events: an unchained one is a moment from its place.
        let mut q = audit_event::Entity::find().filter(audit_event::Column::Sequence.is_not_null());
        if self.person_id.is_some() {
            // Driven by the (person_id, event_id) index.
            q = q.join(
                JoinType::InnerJoin,
                audit_event_person::Relation::AuditEvent.def().rev(),
            );
        }
        q.filter(self.condition())
    }
}

/// Up to `first` events matching `filter`, newest first, older than
/// `before_sequence` when given; and whether more follow.
pub(super) async fn list<C: ConnectionTrait>(
    conn: &C,
    filter: &EventFilter,
    first: u64,
    before_sequence: Option<i64>,
) -> Result<(Vec<AuditEvent>, bool), Error> {
    let mut q = filter.select();
    if let Some(before) = before_sequence {
        q = q.filter(audit_event::Column::Sequence.lt(before));
    }
    let mut rows = q
        .order_by_desc(audit_event::Column::Sequence)
        .limit(first + 1)
        .all(conn)
        .await?;
    let has_next = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((hydrate(conn, rows).await?, has_next))
}

/// The chained event `id`, if there is one.
pub(super) async fn event<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> Result<Option<AuditEvent>, Error> {
    let rows = audit_event::Entity::find_by_id(id)
        .filter(audit_event::Column::Sequence.is_not_null())
        .all(conn)
        .await?;
    Ok(hydrate(conn, rows).await?.pop())
}

/// Events from their rows: person rows loaded, personal values opened.
async fn hydrate<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<audit_event::Model>,
) -> Result<Vec<AuditEvent>, Error> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut subjects = load_subjects(conn, &ids).await?;
    let mut events = rows
        .into_iter()
        .map(|row| {
            let rows = subjects.remove(&row.id).unwrap_or_default();
            to_event(row, rows)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    super::shred::open(
        conn,
        events
            .iter_mut()
            .flat_map(|e| e.subjects.iter_mut())
            .collect(),
    )
    .await?;
    Ok(events)
}

/// How many events match `filter`.
pub(super) async fn count<C: ConnectionTrait>(
    conn: &C,
    filter: &EventFilter,
) -> Result<u64, Error> {
    Ok(filter.select().count(conn).await?)
}

/// The person rows of the events `ids`, by event, in person-id order.
async fn load_subjects<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<audit_event_person::Model>>, Error> {
    let mut by_event: HashMap<Uuid, Vec<audit_event_person::Model>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_event);
    }
    let rows = audit_event_person::Entity::find()
        .filter(audit_event_person::Column::EventId.is_in(ids.iter().copied()))
        .all(conn)
        .await?;
    for row in rows {
        by_event.entry(row.event_id).or_default().push(row);
    }
    for rows in by_event.values_mut() {
        rows.sort_by_key(|r| r.person_id);
    }
    Ok(by_event)
}

fn to_event(
    row: audit_event::Model,
    subjects: Vec<audit_event_person::Model>,
) -> Result<AuditEvent, Error> {
    let damaged = |what: &str| anyhow::anyhow!("audit event {} has a damaged {what}", row.id);
    let subjects = subjects
        .into_iter()
        .map(|s| {
            let changes: Vec<FieldChange> =
                serde_json::from_str(&s.changes).map_err(|_| damaged("change list"))?;
            Ok(Subject {
                person_id: s.person_id,
                changes,
            })
        })
        .collect::<Result<Vec<_>, anyhow::Error>>()?;
    Ok(AuditEvent {
        id: row.id,
        sequence: row.sequence.ok_or_else(|| damaged("sequence"))?,
        occurred_at: row.occurred_at,
        actor_roles: serde_json::from_str(&row.actor_roles).map_err(|_| damaged("role list"))?,
        action: Action::parse(&row.action).ok_or_else(|| damaged("action"))?,
        outcome: Outcome::parse(&row.outcome).ok_or_else(|| damaged("outcome"))?,
        details: row
            .details
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| damaged("details"))?,
        actor: row.actor,
        reason: row.reason,
        request_id: row.request_id,
        previous_hash: row.previous_hash.ok_or_else(|| damaged("previous hash"))?,
        hash: row.hash.ok_or_else(|| damaged("hash"))?,
        subjects,
    })
}

/// The result of recomputing the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// Events that verified before the first that did not (all, when valid).
    pub checked_events: u64,
    /// The first sequence that is missing, altered or out of chain.
    pub first_invalid_sequence: Option<i64>,
    /// The hash of the last event that verified (the genesis hash when none).
    pub head_hash: String,
}

/// Recomputes every chained event's hash in sequence order, page by page,
/// and checks the chain head row against the last event.
pub(super) async fn verify_chained<C: ConnectionTrait>(conn: &C) -> Result<Verification, Error> {
    let mut expected_sequence: i64 = 1;
    let mut previous = GENESIS_HASH.to_owned();
    let mut checked = 0u64;
    let fail = |sequence: i64, checked: u64, head: String| Verification {
        valid: false,
        checked_events: checked,
        first_invalid_sequence: Some(sequence),
        head_hash: head,
    };
    loop {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::Sequence.gte(expected_sequence))
            .order_by_asc(audit_event::Column::Sequence)
            .limit(VERIFY_PAGE)
            .all(conn)
            .await?;
        if rows.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut subjects = load_subjects(conn, &ids).await?;
        for row in &rows {
            if row.sequence != Some(expected_sequence) {
                return Ok(fail(expected_sequence, checked, previous));
            }
            let persons = subjects.remove(&row.id).unwrap_or_default();
            let hash = event_hash(row, expected_sequence, &previous, &persons);
            if row.previous_hash.as_ref() != Some(&previous) || row.hash.as_ref() != Some(&hash) {
                return Ok(fail(expected_sequence, checked, previous));
            }
            previous = hash;
            expected_sequence += 1;
            checked += 1;
        }
    }
    let last = expected_sequence - 1;
    let head = audit_chain_head::Entity::find_by_id(1).one(conn).await?;
    match head {
        Some(h) if h.last_sequence == last && h.last_hash == previous => Ok(Verification {
            valid: true,
            checked_events: checked,
            first_invalid_sequence: None,
            head_hash: previous,
        }),
        // The head names the last event with another hash: that event changed.
        Some(h) if h.last_sequence == last && last > 0 => Ok(fail(last, checked - 1, previous)),
        // Events the head counts are missing from the end.
        _ => Ok(fail(expected_sequence, checked, previous)),
    }
}
