//! Chaining committed events.
//!
//! A mutation writes its event unchained, in its own transaction, and after
//! commit waits here until that event is chained: one chaining transaction
//! locks the chain head, takes every committed unchained event in id
//! (creation) order, gives each the next sequence, its previous hash and its
//! hash, and moves the head. So the many writers commit in parallel (their
//! WAL flushes shared) and only the short chaining step is serialised, for a
//! whole batch of events at once.
//!
//! In this process, one chaining run goes at a time and a writer whose
//! event was committed before a run began needs no run of its own. Across
//! processes the head row lock (PostgreSQL) or the write lock (SQLite)
//! serialises runs, and a run finds nothing left to chain when another
//! process got there first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use entity::{audit_chain_head, audit_event, audit_event_person};
use futures_util::TryStreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::chain::EventHasher;
use crate::db::Db;
use crate::error::Error;

/// Events chained per transaction.
const BATCH: u64 = 1_000;

/// This process's chaining turn.
#[derive(Debug, Default)]
pub struct ChainTurn {
    /// Runs begun so far; a run numbered above what a writer read after its
    /// commit saw that writer's event.
    begun: AtomicU64,
    /// The number of the last run that finished without error.
    finished: Mutex<u64>,
}

/// Chains every event committed so far (by this process or another) that is
/// not chained yet. Returns once the caller's already committed events are
/// chained.
pub async fn chain_committed(db: &Db) -> Result<(), Error> {
    let turn = db.chain_turn();
    let committed_before = turn.begun.load(Ordering::SeqCst);
    let mut finished = turn.finished.lock().await;
    if *finished > committed_before {
        return Ok(());
    }
    let run = turn.begun.fetch_add(1, Ordering::SeqCst) + 1;
    while chain_batch(db).await? == BATCH {}
    *finished = run;
    Ok(())
}

/// Chains up to [`BATCH`] unchained events in one transaction; returns how
/// many.
async fn chain_batch(db: &Db) -> Result<u64, Error> {
    let txn = db.begin_write().await?;
    let mut head_query = audit_chain_head::Entity::find_by_id(1);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        head_query = head_query.lock_exclusive();
    }
    let head = head_query
        .one(&*txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the audit chain head row is missing"))?;
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Sequence.is_null())
        .order_by_asc(audit_event::Column::Id)
        .limit(BATCH)
        .all(&*txn)
        .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let counts: HashMap<Uuid, i64> = audit_event_person::Entity::find()
        .select_only()
        .column(audit_event_person::Column::EventId)
        .column_as(audit_event_person::Column::PersonId.count(), "n")
        .filter(audit_event_person::Column::EventId.is_in(ids.iter().copied()))
        .group_by(audit_event_person::Column::EventId)
        .into_tuple::<(Uuid, i64)>()
        .all(&*txn)
        .await?
        .into_iter()
        .collect();

    // Person rows arrive in (event id, person id) order: the events' chain
    // order, each event's rows in canonical order.
    let mut chained: Vec<Chained> = Vec::with_capacity(events.len());
    let mut previous = head.last_hash;
    let mut sequence = head.last_sequence;
    {
        let mut persons = audit_event_person::Entity::find()
            .filter(audit_event_person::Column::EventId.is_in(ids.iter().copied()))
            .order_by_asc(audit_event_person::Column::EventId)
            .order_by_asc(audit_event_person::Column::PersonId)
            .stream(&*txn)
            .await?;
        let mut next = persons.try_next().await?;
        for event in &events {
            sequence += 1;
            let count = counts.get(&event.id).copied().unwrap_or(0);
            let mut hasher = EventHasher::new(event, sequence, &previous, count as usize);
            while let Some(row) = next.as_ref().filter(|r| r.event_id == event.id) {
                hasher.person(row);
                next = persons.try_next().await?;
            }
            let hash = hasher.finish();
            let previous_hash = std::mem::replace(&mut previous, hash.clone());
            chained.push((event.id, sequence, previous_hash, hash));
        }
    }
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        // One statement for the batch: a round trip per event would
        // lengthen the serialised step with the batch.
        let mut sql = String::from(
            "UPDATE audit_event AS e SET sequence = v.sequence, previous_hash = v.previous_hash, \
             hash = v.hash FROM (VALUES ",
        );
        let mut values = Vec::with_capacity(chained.len() * 4);
        for (i, (id, sequence, previous_hash, hash)) in chained.into_iter().enumerate() {
            let n = i * 4;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}::uuid, ${}::bigint, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            ));
            values.extend([
                id.into(),
                sequence.into(),
                previous_hash.into(),
                hash.into(),
            ]);
        }
        sql.push_str(
            ") AS v(id, sequence, previous_hash, hash) WHERE e.id = v.id AND e.sequence IS NULL",
        );
        let updated = txn
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        if updated.rows_affected() != events.len() as u64 {
            return Err(anyhow::anyhow!("audit events were chained by another run").into());
        }
    } else {
        chain_rows(&txn, chained).await?;
    }
    audit_chain_head::Entity::update_many()
        .col_expr(
            audit_chain_head::Column::LastSequence,
            Expr::value(sequence),
        )
        .col_expr(audit_chain_head::Column::LastHash, Expr::value(previous))
        .filter(audit_chain_head::Column::Id.eq(1))
        .exec(&*txn)
        .await?;
    txn.commit_unchained().await?;
    Ok(events.len() as u64)
}

/// An event's id and the sequence, previous hash and hash it is given.
type Chained = (Uuid, i64, String, String);

/// Chains events a statement each (SQLite: no round trips to save).
async fn chain_rows(txn: &crate::db::WriteTxn, chained: Vec<Chained>) -> Result<(), Error> {
    for (id, sequence, previous_hash, hash) in chained {
        let updated = audit_event::Entity::update_many()
            .col_expr(audit_event::Column::Sequence, Expr::value(sequence))
            .col_expr(
                audit_event::Column::PreviousHash,
                Expr::value(previous_hash),
            )
            .col_expr(audit_event::Column::Hash, Expr::value(hash))
            .filter(audit_event::Column::Id.eq(id))
            .filter(audit_event::Column::Sequence.is_null())
            .exec(&**txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(anyhow::anyhow!("audit event {id} was chained by another run").into());
        }
    }
    Ok(())
}
