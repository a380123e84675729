//! The rules and transactions of consentry. Each public function is one
//! operation: it checks permission, validates, does the work in one
//! transaction and appends the audit event inside it. Nothing here knows
//! GraphQL or HTTP.

pub mod audit_trail;
pub mod compliance;
pub mod crm;
pub mod email;
pub mod erasure;
pub mod export;
pub mod import;
pub mod links;
pub mod people;
pub mod seed;
pub mod subscriptions;
pub mod suppression;

use uuid::Uuid;

use crate::audit::{self, Action, NewEvent};
use crate::auth::{Caller, Permission};
use crate::db::Db;
use crate::error::{Error, Result};

/// Default and bounds of a page size (`first`).
pub const DEFAULT_PAGE: u64 = 50;
pub const MAX_PAGE: u64 = 500;

/// One page of results and whether more follow.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

/// Checks a page size: absent means 50; 1 to 500 allowed.
pub fn page_size(first: Option<i32>) -> Result<u64> {
    match first.map(i64::from) {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => Ok(n as u64),
        Some(_) => Err(Error::bad_input(
            "first",
            format!("first must be between 1 and {MAX_PAGE}"),
        )),
    }
}

fn forbidden(caller: &Caller, permission: Permission) -> Error {
    let roles = caller.actor.role_names();
    Error::Forbidden(format!(
        "roles [{}] do not allow this operation (needs one of: {})",
        roles.join(", "),
        permission
            .roles()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Refuses a read the caller's roles do not allow.
pub fn require(caller: &Caller, permission: Permission) -> Result<()> {
    if caller.actor.can(permission) {
        Ok(())
    } else {
        Err(forbidden(caller, permission))
    }
}

/// Refuses a mutation the caller's roles do not allow, and audits the
/// refusal (outcome `DENIED`) in a transaction of its own.
#[tracing::instrument(skip(db, caller, person_ids), fields(actor = %caller.actor.subject))]
pub async fn authorize(
    db: &Db,
    caller: &Caller,
    permission: Permission,
    action: Action,
    person_ids: &[Uuid],
) -> Result<()> {
    if caller.actor.can(permission) {
        return Ok(());
    }
    let txn = db.begin_write().await?;
    audit::append(&txn, NewEvent::denied(caller, action, person_ids)).await?;
    txn.commit().await?;
    Err(forbidden(caller, permission))
}
