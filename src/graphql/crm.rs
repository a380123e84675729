//! `syncCrm`.

use async_graphql::{Context, Object, Result, SimpleObject};
use uuid::Uuid;

use super::{integrations, request};
use crate::service::crm;

/// What a CRM sync run did.
#[derive(SimpleObject)]
pub struct CrmSyncResult {
    /// CRM opt-outs applied locally.
    pub pulled: u32,
    /// Local opt-outs and resubscribes written to the CRM.
    pub pushed: u32,
    /// CRM opt-ins for locally unsubscribed people, reported and not applied.
    pub conflicts: u32,
    /// Failed Salesforce calls (a failure ends the run; the next run resumes).
    pub errors: u32,
    /// The failure, if any.
    pub error: Option<String>,
    /// The people in conflict.
    pub conflict_person_ids: Vec<Uuid>,
}

#[derive(Default)]
pub struct CrmMutation;

#[Object]
impl CrmMutation {
    /// Syncs opt-outs with Salesforce both ways (admin).
    async fn sync_crm(&self, ctx: &Context<'_>) -> Result<CrmSyncResult> {
        let (db, caller) = request(ctx)?;
        let sf = integrations(ctx)?.salesforce.as_ref();
        let r = Box::pin(crm::sync_crm(db, caller, sf)).await?;
        Ok(CrmSyncResult {
            pulled: r.pulled,
            pushed: r.pushed,
            conflicts: r.conflicts,
            errors: r.errors,
            error: r.error,
            conflict_person_ids: r.conflict_person_ids,
        })
    }
}
