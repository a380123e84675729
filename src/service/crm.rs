//! Two-way opt-out sync with Salesforce Contacts' `HasOptedOutOfEmail`.
//!
//! A run first pushes local opt-outs and admin resubscribes (queued in
//! `crm_outbox` by the same transaction that made them), then pulls Contacts
//! changed after the stored cursor (`SystemModstamp`, then `Id`), following
//! `nextRecordsUrl`. A CRM opt-out unsubscribes locally (channel `CRM_SYNC`,
//! actor `crm-sync`); a CRM opt-in for a locally unsubscribed person is
//! reported as a conflict and never applied. The cursor moves only with what
//! was applied, in the same transaction, so a run cut short (401, 5xx,
//! timeout, crash) resumes where it stopped. A lease row keeps two runs from
//! overlapping, across processes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{crm_outbox, crm_sync_state, person};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use uuid::Uuid;

use super::authorize;
use super::subscriptions::{Channel, opt_out};
use crate::audit::{self, Action, NewEvent, Subject};
use crate::auth::{Actor, Caller, Permission};
use crate::db::Db;
use crate::error::{Error, Result};

/// The Salesforce REST API version used.
pub const API_VERSION: &str = "v60.0";
/// The actor named in audit events for changes the sync applies.
pub const SYNC_ACTOR: &str = "crm-sync";
/// How long a run may hold the lease before another may take over.
const LEASE: Duration = Duration::from_secs(15 * 60);

/// A Salesforce REST client (OAuth bearer token).
#[derive(Clone, Debug)]
pub struct Salesforce {
    http: reqwest::Client,
    base: url::Url,
    token: crate::config::Secret,
}

/// A failed Salesforce call; it fails the run.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("Salesforce rejected the access token (HTTP 401); renew CONSENTRY_SALESFORCE_TOKEN")]
    Unauthorized,
    #[error("Salesforce answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("Salesforce could not be reached: {0}")]
    Transport(String),
    #[error("Salesforce sent an unexpected answer: {0}")]
    Protocol(String),
}

#[derive(Debug, Deserialize)]
struct QueryPage {
    #[serde(default)]
    done: bool,
    #[serde(rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
    records: Vec<ContactRecord>,
}

#[derive(Debug, Deserialize)]
struct ContactRecord {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Email")]
    email: Option<String>,
    #[serde(rename = "HasOptedOutOfEmail", default)]
    has_opted_out: bool,
    #[serde(rename = "SystemModstamp")]
    modstamp: String,
}

/// Salesforce record ids are 15 or 18 alphanumerics.
fn valid_id(id: &str) -> bool {
    (15..=18).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A SOQL datetime literal, rebuilt from a parsed timestamp so nothing the
/// server sent is spliced into a query unchecked.
fn soql_datetime(modstamp: &str) -> std::result::Result<String, CrmError> {
    DateTime::parse_from_str(modstamp, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(modstamp))
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        })
        .map_err(|_| CrmError::Protocol(format!("bad SystemModstamp {modstamp:?}")))
}

/// Escapes a string literal for SOQL.
fn soql_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

impl Salesforce {
    /// A client for the instance at `base_url` with an OAuth access token.
    pub fn new(base_url: &str, token: crate::config::Secret) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Salesforce {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: url::Url::parse(base_url)?,
            token,
        })
    }

    async fn check(res: reqwest::Response) -> std::result::Result<reqwest::Response, CrmError> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CrmError::Unauthorized);
        }
        let body: String = res
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Err(CrmError::Status {
            status: status.as_u16(),
            body,
        })
    }

    async fn get_page(&self, url: url::Url) -> std::result::Result<QueryPage, CrmError> {
        let res = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| CrmError::Transport(e.to_string()))?;
        Self::check(res)
            .await?
            .json()
            .await
            .map_err(|e| CrmError::Protocol(e.to_string()))
    }

    async fn query(&self, soql: &str) -> std::result::Result<QueryPage, CrmError> {
        let mut url = self
            .base
            .join(&format!("/services/data/{API_VERSION}/query"))
            .map_err(|e| CrmError::Protocol(e.to_string()))?;
        url.query_pairs_mut().append_pair("q", soql);
        self.get_page(url).await
    }

    async fn next_page(&self, next: &str) -> std::result::Result<QueryPage, CrmError> {
        if !next.starts_with("/services/data/") {
            return Err(CrmError::Protocol(format!(
                "unexpected nextRecordsUrl {next:?}"
            )));
        }
        let url = self
            .base
            .join(next)
            .map_err(|e| CrmError::Protocol(e.to_string()))?;
        self.get_page(url).await
    }

    async fn set_opted_out(
        &self,
        contact_id: &str,
        opted_out: bool,
    ) -> std::result::Result<(), CrmError> {
        let url = self
            .base
            .join(&format!(
                "/services/data/{API_VERSION}/sobjects/Contact/{contact_id}"
            ))
            .map_err(|e| CrmError::Protocol(e.to_string()))?;
        let res = self
            .http
            .patch(url)
            .bearer_auth(self.token.expose())
            .json(&serde_json::json!({ "HasOptedOutOfEmail": opted_out }))
            .send()
            .await
            .map_err(|e| CrmError::Transport(e.to_string()))?;
        Self::check(res).await.map(|_| ())
    }

    async fn contact_by_email(&self, email: &str) -> std::result::Result<Option<String>, CrmError> {
        let soql = format!(
            "SELECT Id FROM Contact WHERE Email = '{}' LIMIT 1",
            soql_string(email)
        );
        let page = self.query(&soql).await?;
        Ok(page
            .records
            .into_iter()
            .map(|r| r.id)
            .find(|id| valid_id(id)))
    }
}

/// What a sync run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// CRM opt-outs applied locally.
    pub pulled: u32,
    /// Local changes written to the CRM.
    pub pushed: u32,
    /// CRM opt-ins for locally unsubscribed people (not applied).
    pub conflicts: u32,
    /// Failed calls (a failure ends the run; the next run retries).
    pub errors: u32,
    /// The failure, if any.
    pub error: Option<String>,
    /// The people in conflict.
    pub conflict_person_ids: Vec<Uuid>,
}

async fn take_lease(db: &Db, owner: &str) -> Result<bool> {
    let now = crate::time::now();
    let until = now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX);
    let txn = db.begin_write().await?;
    let taken = crm_sync_state::Entity::update_many()
        .col_expr(crm_sync_state::Column::LeaseUntil, Expr::value(until))
        .col_expr(crm_sync_state::Column::LeaseOwner, Expr::value(owner))
        .filter(crm_sync_state::Column::Id.eq(1))
        .filter(
            Condition::any()
                .add(crm_sync_state::Column::LeaseUntil.is_null())
                .add(crm_sync_state::Column::LeaseUntil.lt(now)),
        )
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(taken.rows_affected == 1)
}

async fn release_lease(db: &Db, owner: &str) -> Result<()> {
    let txn = db.begin_write().await?;
    crm_sync_state::Entity::update_many()
        .col_expr(
            crm_sync_state::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            crm_sync_state::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .filter(crm_sync_state::Column::Id.eq(1))
        .filter(crm_sync_state::Column::LeaseOwner.eq(owner))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

async fn set_cursor<C: ConnectionTrait>(txn: &C, record: &ContactRecord) -> Result<()> {
    crm_sync_state::Entity::update_many()
        .col_expr(
            crm_sync_state::Column::CursorModstamp,
            Expr::value(record.modstamp.clone()),
        )
        .col_expr(
            crm_sync_state::Column::CursorId,
            Expr::value(record.id.clone()),
        )
        .filter(crm_sync_state::Column::Id.eq(1))
        .exec(txn)
        .await?;
    Ok(())
}

/// Queues a local subscription change for the CRM, inside the caller's
/// transaction.
pub(crate) async fn enqueue_push<C: ConnectionTrait>(
    txn: &C,
    person_id: Uuid,
    opted_out: bool,
) -> Result<()> {
    crm_outbox::Entity::insert(crm_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        person_id: Set(person_id),
        opted_out: Set(opted_out),
        created_at: Set(crate::time::now()),
        pushed_at: Set(None),
        outcome: Set(None),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

async fn push(
    db: &Db,
    sf: &Salesforce,
    report: &mut SyncReport,
) -> std::result::Result<(), SyncFailure> {
    let pending = crm_outbox::Entity::find()
        .filter(crm_outbox::Column::PushedAt.is_null())
        .order_by_asc(crm_outbox::Column::Id)
        .all(db.conn())
        .await?;
    for item in pending {
        let contact = match person::Entity::find_by_id(item.person_id)
            .one(db.conn())
            .await?
        {
            Some(p) => match p.salesforce_id.filter(|id| valid_id(id)) {
                Some(id) => Some(id),
                None => match p.email {
                    Some(email) => sf.contact_by_email(&email).await?,
                    None => None,
                },
            },
            None => None,
        };
        let outcome = match &contact {
            Some(id) => {
                sf.set_opted_out(id, item.opted_out).await?;
                report.pushed += 1;
                "PUSHED"
            }
            None => "NO_CRM_CONTACT",
        };
        let txn = db.begin_write().await?;
        crm_outbox::Entity::update(crm_outbox::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(item.id),
            pushed_at: Set(Some(crate::time::now())),
            outcome: Set(Some(outcome.to_owned())),
            ..Default::default()
        })
        .exec(&*txn)
        .await?;
        txn.commit().await?;
    }
    Ok(())
}

async fn pull(
    db: &Db,
    sf: &Salesforce,
    sync: &Caller,
    report: &mut SyncReport,
) -> std::result::Result<(), SyncFailure> {
    let state = crm_sync_state::Entity::find_by_id(1)
        .one(db.conn())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the CRM sync state row is missing"))?;
    let since = soql_datetime(&state.cursor_modstamp)?;
    let after_id = if valid_id(&state.cursor_id) {
        state.cursor_id.as_str()
    } else {
        ""
    };
    let soql = format!(
        "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact \
         WHERE SystemModstamp > {since} OR (SystemModstamp = {since} AND Id > '{after_id}') \
         ORDER BY SystemModstamp ASC, Id ASC"
    );
    let mut page = sf.query(&soql).await?;
    let mut opted_out_now = HashSet::new();
    loop {
        let (by_crm_id, by_email) = match_page(db, &page.records).await?;
        let mut unsaved_cursor = None;
        for record in &page.records {
            soql_datetime(&record.modstamp)?;
            if !valid_id(&record.id) {
                return Err(CrmError::Protocol(format!("bad Contact Id {:?}", record.id)).into());
            }
            let matched = by_crm_id.get(&record.id).or_else(|| {
                let email = record.email.as_deref()?.trim().to_lowercase();
                by_email.get(&email)
            });
            match matched {
                Some(p)
                    if record.has_opted_out
                        && !p.unsubscribed
                        && !opted_out_now.contains(&p.id) =>
                {
                    let txn = db.begin_write().await?;
                    opt_out(
                        &txn,
                        sync,
                        p.id,
                        Channel::CrmSync,
                        Some("opted out in Salesforce".into()),
                    )
                    .await?;
                    set_cursor(&*txn, record).await?;
                    txn.commit().await?;
                    report.pulled += 1;
                    opted_out_now.insert(p.id);
                    unsaved_cursor = None;
                    continue;
                }
                Some(p) if !record.has_opted_out && p.unsubscribed => {
                    report.conflicts += 1;
                    report.conflict_person_ids.push(p.id);
                }
                _ => {}
            }
            unsaved_cursor = Some(record);
        }
        if let Some(record) = unsaved_cursor {
            let txn = db.begin_write().await?;
            set_cursor(&*txn, record).await?;
            txn.commit().await?;
        }
        match (&page.next_records_url, page.done) {
            (Some(next), false) => page = sf.next_page(next).await?,
            _ => break,
        }
    }
    Ok(())
}

/// The people a page of Contacts may concern, by Salesforce id and by
/// lower-cased email: two queries per page, not two per record.
async fn match_page(
    db: &Db,
    records: &[ContactRecord],
) -> Result<(
    HashMap<String, person::Model>,
    HashMap<String, person::Model>,
)> {
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let emails: Vec<String> = records
        .iter()
        .filter_map(|r| r.email.as_deref())
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    let by_crm_id = person::Entity::find()
        .filter(person::Column::SalesforceId.is_in(ids))
        .all(db.conn())
        .await?
        .into_iter()
        .filter_map(|p| Some((p.salesforce_id.clone()?, p)))
        .collect();
    let by_email = person::Entity::find()
        .filter(person::Column::EmailNormalized.is_in(emails))
        .all(db.conn())
        .await?
        .into_iter()
        .filter_map(|p| Some((p.email_normalized.clone()?, p)))
        .collect();
    Ok((by_crm_id, by_email))
}

/// Why a run stopped early.
enum SyncFailure {
    Crm(CrmError),
    Local(Error),
}

impl From<CrmError> for SyncFailure {
    fn from(e: CrmError) -> Self {
        SyncFailure::Crm(e)
    }
}

impl From<Error> for SyncFailure {
    fn from(e: Error) -> Self {
        SyncFailure::Local(e)
    }
}

impl From<sea_orm::DbErr> for SyncFailure {
    fn from(e: sea_orm::DbErr) -> Self {
        SyncFailure::Local(e.into())
    }
}

impl From<anyhow::Error> for SyncFailure {
    fn from(e: anyhow::Error) -> Self {
        SyncFailure::Local(e.into())
    }
}

/// Runs one sync (`CRM_SYNCED`; admin). Salesforce failures end the run
/// and are reported in the result; what was applied before them stays.
#[tracing::instrument(skip(db, caller, sf))]
pub async fn sync_crm(db: &Db, caller: &Caller, sf: Option<&Salesforce>) -> Result<SyncReport> {
    authorize(db, caller, Permission::Resubscribe, Action::CrmSynced, &[]).await?;
    let sf = sf.ok_or_else(|| {
        Error::Conflict("CRM sync is not configured: set CONSENTRY_SALESFORCE_URL and CONSENTRY_SALESFORCE_TOKEN".into())
    })?;
    let owner = caller.request_id.clone();
    if !take_lease(db, &owner).await? {
        return Err(Error::Conflict("a CRM sync is already running".into()));
    }
    let sync = Caller {
        actor: Actor::new(SYNC_ACTOR, []),
        request_id: caller.request_id.clone(),
    };
    let mut report = SyncReport::default();
    let mut outcome = push(db, sf, &mut report).await;
    if outcome.is_ok() {
        outcome = pull(db, sf, &sync, &mut report).await;
    }
    release_lease(db, &owner).await?;
    match outcome {
        Ok(()) => {}
        Err(SyncFailure::Crm(e)) => {
            tracing::warn!(error = %e, "CRM sync run failed");
            report.errors += 1;
            report.error = Some(e.to_string());
        }
        Err(SyncFailure::Local(e)) => return Err(e),
    }
    let txn = db.begin_write().await?;
    audit::append(
        &txn,
        NewEvent::success(caller, Action::CrmSynced)
            .subjects(report.conflict_person_ids.iter().map(|&person_id| Subject {
                person_id,
                changes: vec![],
            }))
            .details(serde_json::json!({
                "pulled": report.pulled,
                "pushed": report.pushed,
                "conflicts": report.conflicts,
                "errors": report.errors,
                "error": report.error,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(report)
}

/// Runs [`sync_crm`] every `every` as the CLI's admin actor.
pub fn spawn_periodic(db: Db, sf: Salesforce, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let caller = Caller::new(Actor::new("crm-sync-scheduler", [crate::auth::Role::Admin]));
            match sync_crm(&db, &caller, Some(&sf)).await {
                Ok(r) => tracing::info!(
                    pulled = r.pulled,
                    pushed = r.pushed,
                    conflicts = r.conflicts,
                    errors = r.errors,
                    "CRM sync"
                ),
                Err(Error::Conflict(m)) => tracing::info!("CRM sync skipped: {m}"),
                Err(e) => tracing::error!(error = ?e, "CRM sync failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modstamps_are_rebuilt_as_soql_literals() {
        assert_eq!(
            soql_datetime("2026-11-01T10:00:00.000+0000").unwrap(),
            "2026-11-01T10:00:00.000Z"
        );
        assert!(soql_datetime("2026-11-01 OR Id != null").is_err());
    }

    #[test]
    fn soql_strings_are_escaped() {
        assert_eq!(soql_string("o'brien\\"), "o\\'brien\\\\");
    }

    #[test]
    fn only_salesforce_shaped_ids_are_valid() {
        assert!(valid_id("0035g00000ABCDeAAH"));
        assert!(!valid_id("003' OR Id != '"));
    }
}
