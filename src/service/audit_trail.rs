//! Reading and verifying the audit trail (compliance and admin).

use super::{Page, require};
use crate::audit::{self, AuditEvent, EventFilter, Verification};
use crate::auth::{Caller, Permission};
use crate::db::Db;
use crate::error::Result;

/// Events matching `filter`, newest first, older than `before` when given.
#[tracing::instrument(skip(db, caller))]
pub async fn list_events(
    db: &Db,
    caller: &Caller,
    filter: &EventFilter,
    first: u64,
    before: Option<i64>,
) -> Result<Page<AuditEvent>> {
    require(caller, Permission::ReadAudit)?;
    let (items, has_next) = audit::list(db, filter, first, before).await?;
    Ok(Page { items, has_next })
}

/// How many events match `filter`.
#[tracing::instrument(skip(db, caller))]
pub async fn count_events(db: &Db, caller: &Caller, filter: &EventFilter) -> Result<u64> {
    require(caller, Permission::ReadAudit)?;
    audit::count(db, filter).await
}

/// Recomputes the hash chain.
#[tracing::instrument(skip(db, caller))]
pub async fn verify(db: &Db, caller: &Caller) -> Result<Verification> {
    require(caller, Permission::ReadAudit)?;
    audit::verify(db).await
}
