//! Subscription state and its history: unsubscribing (idempotent, any
//! role) and resubscribing (admin only, with proof of re-consent).

use chrono::{DateTime, NaiveDate, Utc};
use entity::{person, subscription_event};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;
use uuid::Uuid;

use super::people::{lock_person, to_person};
use super::{authorize, require};
use crate::audit::{self, Action, FieldChange, NewEvent};
use crate::auth::{Actor, Caller, Permission};
use crate::db::{Db, WriteTxn};
use crate::domain::{Person, Text, stored_enum};
use crate::error::{Error, Result};

/// An opt-out or an opt-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionKind {
    OptOut,
    OptIn,
}

stored_enum!(SubscriptionKind {
    OptOut => "OPT_OUT",
    OptIn => "OPT_IN",
});

/// How a subscription change came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    UnsubscribeLink,
    CrmSync,
    User,
    AdminResubscribe,
}

stored_enum!(Channel {
    UnsubscribeLink => "UNSUBSCRIBE_LINK",
    CrmSync => "CRM_SYNC",
    User => "USER",
    AdminResubscribe => "ADMIN_RESUBSCRIBE",
});

/// Proof of re-consent, required to resubscribe.
#[derive(Clone, Debug)]
pub struct ReconsentInput {
    pub consent_date: NaiveDate,
    pub method: String,
    pub evidence: String,
}

/// One entry of a person's subscription history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionEvent {
    pub id: Uuid,
    pub person_id: Uuid,
    pub kind: SubscriptionKind,
    pub channel: Channel,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub reason: Option<String>,
    pub reconsent_date: Option<NaiveDate>,
    pub reconsent_method: Option<String>,
    pub reconsent_evidence: Option<String>,
}

fn to_event(m: subscription_event::Model) -> Result<SubscriptionEvent> {
    let damaged = || Error::from(anyhow::anyhow!("subscription event {} is damaged", m.id));
    Ok(SubscriptionEvent {
        kind: SubscriptionKind::parse(&m.kind).ok_or_else(damaged)?,
        channel: Channel::parse(&m.channel).ok_or_else(damaged)?,
        id: m.id,
        person_id: m.person_id,
        occurred_at: m.occurred_at,
        actor: m.actor,
        reason: m.reason,
        reconsent_date: m.reconsent_date,
        reconsent_method: m.reconsent_method,
        reconsent_evidence: m.reconsent_evidence,
    })
}

/// A person's subscription history, oldest first.
#[tracing::instrument(skip(db, caller))]
pub async fn history(db: &Db, caller: &Caller, person_id: Uuid) -> Result<Vec<SubscriptionEvent>> {
    require(caller, Permission::ReadPeople)?;
    subscription_event::Entity::find()
        .filter(subscription_event::Column::PersonId.eq(person_id))
        .order_by_asc(subscription_event::Column::OccurredAt)
        .order_by_asc(subscription_event::Column::Id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(to_event)
        .collect()
}

/// Unsubscribes a person (`UNSUBSCRIBED`). Unsubscribing an unsubscribed
/// person records no new history, but is still audited.
#[tracing::instrument(skip(db, caller, reason))]
pub async fn unsubscribe(
    db: &Db,
    caller: &Caller,
    person_id: Uuid,
    reason: Option<String>,
) -> Result<Person> {
    authorize(
        db,
        caller,
        Permission::UnsubscribeAndExport,
        Action::Unsubscribed,
        &[person_id],
    )
    .await?;
    let reason = Text::parse_optional("reason", reason.as_deref())?.map(String::from);
    let txn = db.begin_write().await?;
    let person = opt_out(&txn, caller, person_id, Channel::User, reason).await?;
    txn.commit().await?;
    Ok(person)
}

/// The audit actor for a person acting through their unsubscribe link.
pub fn data_subject(person_id: Uuid) -> Caller {
    Caller::new(Actor::new(format!("data-subject:{person_id}"), []))
}

/// Unsubscribes the person an unsubscribe link names (channel
/// `UNSUBSCRIBE_LINK`, actor `data-subject:{id}`). The verified link is the
/// authority, so no role is needed. `NOT_FOUND` for an unknown person.
#[tracing::instrument(skip(db))]
pub async fn unsubscribe_by_link(db: &Db, person_id: Uuid) -> Result<Person> {
    let caller = data_subject(person_id);
    let txn = db.begin_write().await?;
    let person = opt_out(&txn, &caller, person_id, Channel::UnsubscribeLink, None).await?;
    txn.commit().await?;
    Ok(person)
}

/// Records an opt-out through `channel` inside `txn` and audits it; shared
/// by every way a person can unsubscribe.
pub(crate) async fn opt_out(
    txn: &WriteTxn,
    caller: &Caller,
    person_id: Uuid,
    channel: Channel,
    reason: Option<String>,
) -> Result<Person> {
    let row = lock_person(&**txn, person_id).await?;
    let mut changes = Vec::new();
    let row = if row.unsubscribed {
        row
    } else {
        let now = crate::time::now();
        insert_event(
            &**txn,
            caller,
            person_id,
            SubscriptionKind::OptOut,
            channel,
            now,
            reason.clone(),
            None,
        )
        .await?;
        changes.push(FieldChange::new(
            "unsubscribed",
            Value::Bool(false),
            Value::Bool(true),
        ));
        if channel != Channel::CrmSync {
            super::crm::enqueue_push(&**txn, person_id, true).await?;
        }
        set_state(&**txn, person_id, Some(now)).await?
    };
    audit::append(
        txn,
        NewEvent::success(caller, Action::Unsubscribed)
            .subject(person_id, changes)
            .reason(reason)
            .details(serde_json::json!({ "channel": channel.as_str() })),
    )
    .await?;
    to_person(row)
}

/// Resubscribes an unsubscribed person on proof of re-consent
/// (`RESUBSCRIBED`; admin only).
#[tracing::instrument(skip(db, caller, reconsent))]
pub async fn resubscribe(
    db: &Db,
    caller: &Caller,
    person_id: Uuid,
    reconsent: &ReconsentInput,
) -> Result<Person> {
    authorize(
        db,
        caller,
        Permission::Resubscribe,
        Action::Resubscribed,
        &[person_id],
    )
    .await?;
    let method = Text::parse("method", &reconsent.method)?;
    let evidence = Text::parse("evidence", &reconsent.evidence)?;
    if reconsent.consent_date > crate::time::today() {
        return Err(Error::bad_input(
            "consentDate",
            "consentDate must not be in the future",
        ));
    }

    let txn = db.begin_write().await?;
    let row = lock_person(&*txn, person_id).await?;
    let Some(unsubscribed_at) = row.unsubscribed_at.filter(|_| row.unsubscribed) else {
        return Err(Error::Conflict(format!(
            "person {person_id} is not unsubscribed"
        )));
    };
    if reconsent.consent_date < unsubscribed_at.date_naive() {
        return Err(Error::bad_input(
            "consentDate",
            format!(
                "consentDate must not be before the opt-out on {}",
                unsubscribed_at.date_naive()
            ),
        ));
    }
    let now = crate::time::now();
    insert_event(
        &*txn,
        caller,
        person_id,
        SubscriptionKind::OptIn,
        Channel::AdminResubscribe,
        now,
        None,
        Some((reconsent.consent_date, method.as_str(), evidence.as_str())),
    )
    .await?;
    let row = set_state(&*txn, person_id, None).await?;
    super::crm::enqueue_push(&*txn, person_id, false).await?;
    let changes = vec![
        FieldChange::new("unsubscribed", Value::Bool(true), Value::Bool(false)),
        FieldChange::new(
            "reconsentDate",
            Value::Null,
            Value::String(reconsent.consent_date.to_string()),
        ),
        FieldChange::new("reconsentMethod", Value::Null, method.as_str().into()),
        FieldChange::new("reconsentEvidence", Value::Null, evidence.as_str().into()),
    ];
    audit::append(
        &txn,
        NewEvent::success(caller, Action::Resubscribed).subject(person_id, changes),
    )
    .await?;
    txn.commit().await?;
    to_person(row)
}

#[allow(clippy::too_many_arguments)]
async fn insert_event<C: ConnectionTrait>(
    txn: &C,
    caller: &Caller,
    person_id: Uuid,
    kind: SubscriptionKind,
    channel: Channel,
    at: DateTime<Utc>,
    reason: Option<String>,
    reconsent: Option<(NaiveDate, &str, &str)>,
) -> Result<()> {
    subscription_event::Entity::insert(subscription_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        person_id: Set(person_id),
        kind: Set(kind.as_str().to_owned()),
        channel: Set(channel.as_str().to_owned()),
        occurred_at: Set(at),
        actor: Set(caller.actor.subject.clone()),
        reason: Set(reason),
        reconsent_date: Set(reconsent.map(|r| r.0)),
        reconsent_method: Set(reconsent.map(|r| r.1.to_owned())),
        reconsent_evidence: Set(reconsent.map(|r| r.2.to_owned())),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Sets the subscription state: unsubscribed since `since`, or subscribed.
async fn set_state<C: ConnectionTrait>(
    txn: &C,
    person_id: Uuid,
    since: Option<DateTime<Utc>>,
) -> Result<person::Model> {
    let row = person::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(person_id),
        unsubscribed: Set(since.is_some()),
        unsubscribed_at: Set(since),
        updated_at: Set(crate::time::now()),
        ..Default::default()
    };
    Ok(person::Entity::update(row).exec(txn).await?)
}
