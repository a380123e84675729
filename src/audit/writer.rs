//! Appending events. Runs inside the caller's transaction, so the event
//! commits or rolls back with the change it describes.

use entity::{audit_chain_head, audit_event, audit_event_person};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::chain::{ENCODING_VERSION, event_hash};
use super::{AuditEvent, NewEvent, Subject};
use crate::error::Error;

/// Person rows per INSERT: 3 columns each stays under SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters.
const ROWS_PER_INSERT: usize = 8_000;

/// Appends `event` to the chain inside `txn` and returns it (with its
/// values in the clear; personal values are stored sealed).
///
/// The chain head row is locked (`FOR UPDATE` on PostgreSQL; SQLite write
/// transactions are already serialised), so concurrent appenders, in this
/// process or another, queue and the sequence stays gap-free. Callers
/// append last in their transaction, so the lock is held only until commit.
pub async fn append<C: ConnectionTrait>(txn: &C, event: NewEvent) -> Result<AuditEvent, Error> {
    let mut head_query = audit_chain_head::Entity::find_by_id(1);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        head_query = head_query.lock_exclusive();
    }
    let head = head_query
        .one(txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the audit chain head row is missing"))?;

    let subjects = merge_subjects(event.subjects);
    let sequence = head.last_sequence + 1;
    let occurred_at = crate::time::now();
    let mut row = audit_event::Model {
        sequence,
        id: Uuid::now_v7(),
        occurred_at,
        actor: event.actor,
        actor_roles: serde_json::to_string(&event.actor_roles).map_err(anyhow::Error::from)?,
        action: event.action.as_str().to_owned(),
        outcome: event.outcome.as_str().to_owned(),
        reason: event.reason,
        request_id: event.request_id,
        details: event
            .details
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(anyhow::Error::from)?,
        encoding_version: ENCODING_VERSION,
        previous_hash: head.last_hash,
        hash: String::new(),
    };
    let sealed = super::shred::seal(txn, &subjects).await?;
    let person_rows = subjects
        .iter()
        .zip(&sealed)
        .map(|(s, changes)| {
            Ok(audit_event_person::Model {
                event_sequence: sequence,
                person_id: s.person_id,
                changes: serde_json::to_string(changes)?,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(anyhow::Error::from)?;
    row.hash = event_hash(&row, &person_rows);

    audit_event::Entity::insert(audit_event::ActiveModel::from(row.clone()))
        .exec_without_returning(txn)
        .await?;
    for chunk in person_rows.chunks(ROWS_PER_INSERT) {
        audit_event_person::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(audit_event_person::ActiveModel::from),
        )
        .exec_without_returning(txn)
        .await?;
    }
    let updated = audit_chain_head::Entity::update_many()
        .col_expr(
            audit_chain_head::Column::LastSequence,
            Expr::value(sequence),
        )
        .col_expr(
            audit_chain_head::Column::LastHash,
            Expr::value(row.hash.clone()),
        )
        .filter(audit_chain_head::Column::Id.eq(1))
        .filter(audit_chain_head::Column::LastSequence.eq(head.last_sequence))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(anyhow::anyhow!("the audit chain head moved during an append").into());
    }
    Ok(AuditEvent {
        id: row.id,
        sequence,
        occurred_at,
        actor: row.actor,
        actor_roles: event.actor_roles,
        action: event.action,
        outcome: event.outcome,
        reason: row.reason,
        request_id: row.request_id,
        details: event.details,
        previous_hash: row.previous_hash,
        hash: row.hash,
        subjects,
    })
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
