//! Chaining committed events.
//!
//! On PostgreSQL a mutation writes its event unchained, in its own
//! transaction, and after commit has it chained in the background
//! ([`chain_soon`]): one chaining transaction locks the chain head, takes
//! every committed unchained event in id (creation) order, gives each the
//! next sequence, its previous hash and its hash, and moves the head. So the
//! many writers commit in parallel (their WAL flushes shared) and only the
//! short chaining step is serialised, for a whole batch of events at once,
//! without a writer waiting for it.
//!
//! On SQLite a write transaction holds the only writer anyway, so an event
//! appended with `audit::append` is written chained in its own transaction
//! ([`head_for_next`]); only a bulk update's event (written in parts) and
//! events a stopped process left go the way above.
//!
//! The trail is read only as chained, and every read first chains whatever
//! is committed and not chained yet ([`chain_pending`]), in this process or
//! any other: a caller sees every event committed before its read, as if
//! each writer had waited. The unchained events are found through a partial
//! index, so a read with nothing pending pays one indexed lookup.
//!
//! In this process, one chaining run goes at a time and a writer whose
//! event was committed before a run began needs no run of its own. Across
//! processes the head row lock (PostgreSQL) or the write lock (SQLite)
//! serialises runs, and a run finds nothing left to chain when another
//! process got there first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use entity::{audit_chain_head, audit_event, audit_event_person};
use futures_util::TryStreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

use super::chain::EventHasher;
use crate::db::{Db, WriteTxn};
use crate::error::Error;

/// Events chained per transaction.
const BATCH: u64 = 1_000;
/// Growth of the chain, at least, before this process has the statistics
/// of `audit_event` refreshed (see [`refresh_statistics`]).
const ANALYZE_AFTER_EVENTS: i64 = 1_000;

/// This process's chaining turn.
#[derive(Debug, Default)]
pub struct ChainTurn {
    /// Runs begun so far; a run numbered above what a writer read after its
    /// commit saw that writer's event.
    begun: AtomicU64,
    /// The number of the last run that finished without error.
    finished: Mutex<u64>,
    /// The chain's length when this process last had the planner's
    /// statistics of `audit_event` refreshed (0: not known yet).
    analyzed_at: AtomicI64,
    /// Whether a background run is scheduled and has not begun.
    scheduled: AtomicBool,
    /// Background runs scheduled or running.
    in_flight: AtomicUsize,
    /// Notified when the last background run in flight ends.
    idle: Notify,
}

/// Has the events committed so far chained in the background, by one run
/// for every commit made before it began. A failed run is logged; its
/// events stay committed and the next run (another commit, a read of the
/// trail, server start or stop) chains them.
pub fn chain_soon(db: &Db) {
    let turn = db.chain_turn();
    if turn.scheduled.swap(true, Ordering::SeqCst) {
        // The scheduled run has not begun, so it covers this commit too.
        return;
    }
    turn.in_flight.fetch_add(1, Ordering::SeqCst);
    let db = db.clone();
    tokio::spawn(async move {
        let turn = db.chain_turn();
        turn.scheduled.store(false, Ordering::SeqCst);
        if let Err(e) = chain_committed(&db).await {
            tracing::error!(error = %e, "committed audit events could not be chained yet");
        }
        if turn.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            turn.idle.notify_waiters();
        }
    });
}

/// Returns once no background run ([`chain_soon`]) is scheduled or
/// running in this process: every event this process committed before the
/// call is chained, or its run failed.
pub async fn background_chaining_done(db: &Db) {
    let turn = db.chain_turn();
    loop {
        let notified = turn.idle.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if turn.in_flight.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

/// Chains every committed event not chained yet, when there is one; for a
/// read of the trail, which then sees every event committed before it.
pub async fn chain_pending(db: &Db) -> Result<(), Error> {
    let pending = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::Id)
        .filter(audit_event::Column::Sequence.is_null())
        .into_tuple::<Uuid>()
        .one(db.conn())
        .await?;
    match pending {
        Some(_) => chain_committed(db).await,
        None => Ok(()),
    }
}

/// Chains every event committed so far (by this process or another) that is
/// not chained yet. Returns once the caller's already committed events are
/// chained.
///
/// The run is driven on a blocking-pool thread of its own: every writer
/// waits for it, and on the runtime's threads each of its statements would
/// wait its turn behind all the requests in flight (measured under 32
/// concurrent card edits on PostgreSQL: a run took 6.2 ms there, 5.0 ms on
/// its own thread).
pub async fn chain_committed(db: &Db) -> Result<(), Error> {
    let turn = db.chain_turn();
    let committed_before = turn.begun.load(Ordering::SeqCst);
    let mut finished = turn.finished.lock().await;
    if *finished > committed_before {
        return Ok(());
    }
    let run = turn.begun.fetch_add(1, Ordering::SeqCst) + 1;
    let chaining = db.clone();
    let runtime = tokio::runtime::Handle::current();
    let length = tokio::task::spawn_blocking(move || {
        runtime.block_on(async {
            loop {
                let (chained, length) = chain_batch(&chaining).await?;
                if chained < BATCH {
                    return Ok::<i64, Error>(length);
                }
            }
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("the chaining thread failed: {e}"))??;
    *finished = run;
    drop(finished);
    refresh_statistics(db, length);
    Ok(())
}

/// Has PostgreSQL's statistics of `audit_event` refreshed, in the
/// background, each time the chain has doubled (and grown by at least
/// [`ANALYZE_AFTER_EVENTS`]) since this process last did.
///
/// The chaining statements are prepared once per connection and PostgreSQL
/// keeps a generic plan for them, planned for the table as it was. On a new
/// database the table holds a handful of events, so that plan scans it
/// whole; under load it grows by thousands of events a second, and every
/// chaining run — which every writer waits for — scans all of them until
/// autovacuum analyses the table (up to a minute later). Analysing makes
/// PostgreSQL plan the statements again, on the index. Measured with B3's
/// load on a freshly seeded database: 4,834 whole-table scans of
/// `audit_event` in 10 seconds, reading 49 million rows.
fn refresh_statistics(db: &Db, length: i64) {
    if db.backend() != DatabaseBackend::Postgres {
        return;
    }
    let analyzed_at = &db.chain_turn().analyzed_at;
    let last = analyzed_at.load(Ordering::SeqCst);
    if last == 0 {
        analyzed_at.store(length.max(1), Ordering::SeqCst);
        return;
    }
    if length < last.saturating_mul(2).max(last + ANALYZE_AFTER_EVENTS)
        || analyzed_at
            .compare_exchange(last, length, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    let db = db.clone();
    tokio::spawn(async move {
        let analyzed = db.conn().execute_unprepared("ANALYZE audit_event").await;
        if let Err(e) = analyzed {
            tracing::warn!(error = %e, "cannot refresh the statistics of audit_event");
        }
    });
}

/// Chains up to [`BATCH`] unchained events in one transaction of their
/// own; returns how many, and the chain's length after.
async fn chain_batch(db: &Db) -> Result<(u64, i64), Error> {
    let txn = db.begin_write().await?;
    let (chained, length, _) = chain_in(&txn).await?;
    if chained > 0 {
        txn.commit_unchained().await?;
    }
    Ok((chained, length))
}

/// Chains up to [`BATCH`] unchained events in `txn`; returns how many, and
/// the chain head after (its sequence and hash).
///
/// Writers wait for this step and it runs one at a time, so on PostgreSQL
/// it takes few round trips: the head, the events and their person counts
/// in one statement, the person rows in a second, and the events and the
/// head moved in a third.
async fn chain_in(txn: &WriteTxn) -> Result<(u64, i64, String), Error> {
    let postgres = txn.get_database_backend() == DatabaseBackend::Postgres;
    let batch = if postgres {
        load_postgres(txn).await?
    } else {
        load(txn).await?
    };
    let Batch {
        last_sequence: mut sequence,
        last_hash: mut previous,
        events,
        counts,
    } = batch;
    if events.is_empty() {
        return Ok((0, sequence, previous));
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();

    // Person rows arrive in (event id, person id) order: the events' chain
    // order, each event's rows in canonical order.
    let mut chained: Vec<Chained> = Vec::with_capacity(events.len());
    {
        let mut persons = audit_event_person::Entity::find()
            .filter(audit_event_person::Column::EventId.is_in(ids.iter().copied()))
            .order_by_asc(audit_event_person::Column::EventId)
            .order_by_asc(audit_event_person::Column::PersonId)
            .stream(&**txn)
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
    if postgres {
        store_postgres(txn, chained, sequence, previous.clone()).await?;
    } else {
        chain_rows(txn, chained).await?;
        move_head(txn, sequence, &previous).await?;
    }
    Ok((events.len() as u64, sequence, previous))
}

/// The chain head an event written chained in `txn` follows (SQLite, where
/// the write transaction holds the only writer: see `writer::append`).
/// Whatever is committed and not chained yet (an event of a process that
/// stopped before chaining it, a bulk update's) is chained first, in
/// `txn`, so the new event comes after every event committed before it.
/// One statement when nothing is pending.
pub(super) async fn head_for_next(txn: &WriteTxn) -> Result<(i64, String), Error> {
    const SQL: &str = "SELECT h.last_sequence, h.last_hash, \
         EXISTS (SELECT 1 FROM audit_event WHERE sequence IS NULL) \
         FROM audit_chain_head AS h WHERE h.id = 1";
    let row = txn
        .query_one_raw(Statement::from_string(txn.get_database_backend(), SQL))
        .await?
        .ok_or_else(missing_head)?;
    if row.try_get_by_index::<i64>(2)? == 0 {
        return Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
    }
    loop {
        let (chained, sequence, hash) = chain_in(txn).await?;
        if chained < BATCH {
            return Ok((sequence, hash));
        }
    }
}

/// Moves the chain head to `sequence` and `hash` (SQLite).
pub(super) async fn move_head(txn: &WriteTxn, sequence: i64, hash: &str) -> Result<(), Error> {
    txn.execute_raw(move_head_statement(
        txn.get_database_backend(),
        sequence,
        hash,
    ))
    .await?;
    Ok(())
}

/// The statement that moves the chain head to `sequence` and `hash`.
pub(super) fn move_head_statement(
    backend: DatabaseBackend,
    sequence: i64,
    hash: &str,
) -> Statement {
    audit_chain_head::Entity::update_many()
        .col_expr(
            audit_chain_head::Column::LastSequence,
            Expr::value(sequence),
        )
        .col_expr(audit_chain_head::Column::LastHash, Expr::value(hash))
        .filter(audit_chain_head::Column::Id.eq(1))
        .build(backend)
}

/// The chain head and the next unchained events, in id order, with how
/// many people each names.
struct Batch {
    last_sequence: i64,
    last_hash: String,
    events: Vec<audit_event::Model>,
    counts: HashMap<Uuid, i64>,
}

fn missing_head() -> Error {
    anyhow::anyhow!("the audit chain head row is missing").into()
}

/// [`Batch`] a statement at a time (SQLite: its one writer holds the
/// database, and there are no round trips to save).
async fn load(txn: &WriteTxn) -> Result<Batch, Error> {
    let head = audit_chain_head::Entity::find_by_id(1)
        .one(&**txn)
        .await?
        .ok_or_else(missing_head)?;
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Sequence.is_null())
        .order_by_asc(audit_event::Column::Id)
        .limit(BATCH)
        .all(&**txn)
        .await?;
    let counts = if events.is_empty() {
        HashMap::new()
    } else {
        audit_event_person::Entity::find()
            .select_only()
            .column(audit_event_person::Column::EventId)
            .column_as(audit_event_person::Column::PersonId.count(), "n")
            .filter(audit_event_person::Column::EventId.is_in(events.iter().map(|e| e.id)))
            .group_by(audit_event_person::Column::EventId)
            .into_tuple::<(Uuid, i64)>()
            .all(&**txn)
            .await?
            .into_iter()
            .collect()
    };
    Ok(Batch {
        last_sequence: head.last_sequence,
        last_hash: head.last_hash,
        events,
        counts,
    })
}

/// [`Batch`] in one statement on PostgreSQL: it locks the head row and
/// reads the events. The events are read from the statement's snapshot,
/// taken before the lock was granted; if another process chained in
/// between (the locked head is ahead of the snapshot's last sequence), the
/// events are read again, now under the lock.
async fn load_postgres(txn: &WriteTxn) -> Result<Batch, Error> {
    const SQL: &str = "WITH head AS (SELECT last_sequence, last_hash FROM audit_chain_head \
         WHERE id = 1 FOR UPDATE) \
         SELECT head.last_sequence AS head_sequence, head.last_hash AS head_hash, \
         (SELECT COALESCE(MAX(sequence), 0) FROM audit_event) AS snapshot_sequence, \
         (SELECT COUNT(*) FROM audit_event_person AS p WHERE p.event_id = e.id) AS person_count, \
         e.* FROM head LEFT JOIN LATERAL (SELECT * FROM audit_event WHERE sequence IS NULL \
         ORDER BY id LIMIT $1) AS e ON true ORDER BY e.id";
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            SQL,
            [(BATCH as i64).into()],
        ))
        .await?;
    let first = rows.first().ok_or_else(missing_head)?;
    let last_sequence: i64 = first.try_get("", "head_sequence")?;
    let last_hash: String = first.try_get("", "head_hash")?;
    if first.try_get::<i64>("", "snapshot_sequence")? != last_sequence {
        return load(txn).await;
    }
    let mut events = Vec::with_capacity(rows.len());
    let mut counts = HashMap::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<Uuid>>("", "id")?.is_none() {
            continue;
        }
        let event = audit_event::Model::from_query_result(row, "")?;
        counts.insert(event.id, row.try_get::<i64>("", "person_count")?);
        events.push(event);
    }
    Ok(Batch {
        last_sequence,
        last_hash,
        events,
        counts,
    })
}

/// Chains the events and moves the head in one statement (PostgreSQL): the
/// head moves only if every event was still unchained.
async fn store_postgres(
    txn: &WriteTxn,
    chained: Vec<Chained>,
    last_sequence: i64,
    last_hash: String,
) -> Result<(), Error> {
    let count = chained.len();
    let mut sql = String::from("WITH v(id, sequence, previous_hash, hash) AS (VALUES ");
    let mut values = Vec::with_capacity(count * 4 + 3);
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
    let n = count * 4;
    sql.push_str(&format!(
        "), chained AS (UPDATE audit_event AS e SET sequence = v.sequence, \
         previous_hash = v.previous_hash, hash = v.hash FROM v \
         WHERE e.id = v.id AND e.sequence IS NULL RETURNING e.id) \
         UPDATE audit_chain_head SET last_sequence = ${}::bigint, last_hash = ${} \
         WHERE id = 1 AND (SELECT COUNT(*) FROM chained) = ${}::bigint",
        n + 1,
        n + 2,
        n + 3
    ));
    values.extend([
        last_sequence.into(),
        last_hash.into(),
        (count as i64).into(),
    ]);
    let moved = txn
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    if moved.rows_affected() != 1 {
        return Err(anyhow::anyhow!("audit events were chained by another run").into());
    }
    Ok(())
}

/// An event's id and the sequence, previous hash and hash it is given.
type Chained = (Uuid, i64, String, String);

/// Chains events a statement each (SQLite: no round trips to save).
async fn chain_rows(txn: &WriteTxn, chained: Vec<Chained>) -> Result<(), Error> {
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
