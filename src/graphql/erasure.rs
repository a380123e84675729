//! `erasePerson`.

use async_graphql::{Context, Object, Result, SimpleObject};
use uuid::Uuid;

use super::types::AuditEventObject;
use super::{integrations, request};
use crate::service::erasure;

/// What an erasure did.
#[derive(SimpleObject)]
pub struct ErasureResult {
    /// The erased person's id (all that remains of them, with the audit trail).
    pub person_id: Uuid,
    /// The `PERSON_ERASED` event.
    pub audit_event: AuditEventObject,
}

#[derive(Default)]
pub struct ErasureMutation;

#[Object]
impl ErasureMutation {
    /// Erases a person's personal data (GDPR Art. 17; compliance, admin).
    async fn erase_person(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        reason: String,
    ) -> Result<ErasureResult> {
        let (db, caller) = request(ctx)?;
        let suppression = &integrations(ctx)?.suppression;
        let event = Box::pin(erasure::erase_person(db, caller, suppression, id, &reason)).await?;
        Ok(ErasureResult {
            person_id: id,
            audit_event: AuditEventObject(event),
        })
    }
}
