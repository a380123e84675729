//! Erasure (GDPR Art. 17): the person's row, subscription history, emails
//! and CRM queue go; their audit key is destroyed, so personal values in
//! the trail read as erased while every hash still verifies; their email
//! joins the suppression list. The trail keeps the fact and the actor.

use entity::{crm_outbox, email_message, person, subscription_event};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::authorize;
use super::people::{lock_person, to_person};
use super::suppression::Suppression;
use crate::audit::{self, Action, AuditEvent, NewEvent};
use crate::auth::{Caller, Permission};
use crate::db::Db;
use crate::domain::Text;
use crate::error::Result;

/// Erases a person (`PERSON_ERASED`; compliance, admin).
#[tracing::instrument(skip(db, caller, suppression, reason))]
pub async fn erase_person(
    db: &Db,
    caller: &Caller,
    suppression: &Suppression,
    person_id: Uuid,
    reason: &str,
) -> Result<AuditEvent> {
    authorize(
        db,
        caller,
        Permission::EraseAndAccess,
        Action::PersonErased,
        &[person_id],
    )
    .await?;
    let reason = Text::parse("reason", reason)?;

    let txn = db.begin_write().await?;
    let person = to_person(lock_person(&*txn, person_id).await?)?;
    if let Some(email) = &person.contact.email {
        suppression.add(&*txn, email).await?;
    }
    subscription_event::Entity::delete_many()
        .filter(subscription_event::Column::PersonId.eq(person_id))
        .exec(&*txn)
        .await?;
    email_message::Entity::delete_many()
        .filter(email_message::Column::PersonId.eq(person_id))
        .exec(&*txn)
        .await?;
    crm_outbox::Entity::delete_many()
        .filter(crm_outbox::Column::PersonId.eq(person_id))
        .exec(&*txn)
        .await?;
    person::Entity::delete_by_id(person_id).exec(&*txn).await?;
    audit::shred::shred(&*txn, person_id).await?;
    let event = audit::append(
        &txn,
        NewEvent::success(caller, Action::PersonErased)
            .subject(person_id, vec![])
            .reason(Some(reason.into()))
            .details(serde_json::json!({ "suppressedEmail": person.contact.email.is_some() })),
    )
    .await?;
    txn.commit().await?;
    checkpoint(db).await;
    audit::chained(db, event).await
}

/// On SQLite, moves the WAL into the database file and truncates it, so the
/// erased bytes (zeroed by `secure_delete`) leave the WAL at once. Best
/// effort: a busy reader only delays it to the next automatic checkpoint.
async fn checkpoint(db: &Db) {
    if let Err(e) = db.checkpoint().await {
        tracing::warn!(error = %e, "checkpoint after erasure failed");
    }
}
