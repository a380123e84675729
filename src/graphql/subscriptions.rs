//! `unsubscribe`, `resubscribe`.

use async_graphql::{Context, InputObject, Object, Result};
use uuid::Uuid;

use super::request;
use super::scalars::Date;
use super::types::PersonObject;
use crate::service::subscriptions;

/// Proof of re-consent.
#[derive(InputObject)]
pub struct ReconsentInput {
    /// Not in the future, not before the opt-out's date (UTC).
    pub consent_date: Date,
    /// How consent was given again (non-blank).
    pub method: String,
    /// Where the proof is (non-blank).
    pub evidence: String,
}

#[derive(Default)]
pub struct SubscriptionMutation;

#[Object]
impl SubscriptionMutation {
    /// Unsubscribes a person; repeating it records nothing new (any role).
    async fn unsubscribe(
        &self,
        ctx: &Context<'_>,
        person_id: Uuid,
        reason: Option<String>,
    ) -> Result<PersonObject> {
        let (db, caller) = request(ctx)?;
        Ok(PersonObject(
            Box::pin(subscriptions::unsubscribe(db, caller, person_id, reason)).await?,
        ))
    }

    /// Removes an unsubscribe on proof of re-consent (admin).
    async fn resubscribe(
        &self,
        ctx: &Context<'_>,
        person_id: Uuid,
        reconsent: ReconsentInput,
    ) -> Result<PersonObject> {
        let (db, caller) = request(ctx)?;
        let reconsent = subscriptions::ReconsentInput {
            consent_date: reconsent.consent_date.0,
            method: reconsent.method,
            evidence: reconsent.evidence,
        };
        Ok(PersonObject(
            Box::pin(subscriptions::resubscribe(
                db, caller, person_id, &reconsent,
            ))
            .await?,
        ))
    }
}
