//! `auditEvents`, `verifyAuditTrail`.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::request;
use super::types::{
    AuditAction, AuditEventConnection, AuditOutcome, event_connection, event_cursor,
};
use crate::audit::EventFilter;
use crate::service::{self, audit_trail};

/// Which audit events to list; every set condition must hold.
#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    pub person_id: Option<Uuid>,
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub outcome: Option<AuditOutcome>,
    /// Occurred at or after (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Occurred before (exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// The result of recomputing the hash chain.
#[derive(SimpleObject)]
pub struct AuditVerification {
    pub valid: bool,
    /// Events that verified (before the first that did not).
    pub checked_events: u64,
    /// The first event that is missing, altered or out of chain.
    pub first_invalid_sequence: Option<i64>,
    /// The hash of the last event that verified.
    pub head_hash: String,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Audit events, newest first (compliance, admin). `first` defaults to
    /// 50 (1 to 500).
    #[graphql(complexity = "crate::graphql::page_weight(first) * child_complexity")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditEventFilter>,
    ) -> Result<AuditEventConnection> {
        let (db, caller) = request(ctx)?;
        let first = service::page_size(first)?;
        let before = event_cursor(after.as_deref())?;
        let f = filter.unwrap_or_default();
        let filter = EventFilter {
            person_id: f.person_id,
            actor: f.actor,
            action: f.action.map(Into::into),
            outcome: f.outcome.map(Into::into),
            from: f.from,
            to: f.to,
        };
        let page = Box::pin(audit_trail::list_events(db, caller, &filter, first, before)).await?;
        Ok(event_connection(page, filter, before.is_some()))
    }

    /// Recomputes the audit hash chain and names the first event that does
    /// not verify (compliance, admin).
    async fn verify_audit_trail(&self, ctx: &Context<'_>) -> Result<AuditVerification> {
        let (db, caller) = request(ctx)?;
        let v = Box::pin(audit_trail::verify(db, caller)).await?;
        Ok(AuditVerification {
            valid: v.valid,
            checked_events: v.checked_events,
            first_invalid_sequence: v.first_invalid_sequence,
            head_hash: v.head_hash,
        })
    }
}
