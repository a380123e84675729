//! GraphQL output types and enums. They wrap domain values, so storage
//! rows and internal columns never reach the API.

use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::connection::{Connection, Node};
use super::inline::Inline;
use super::request;
use super::scalars::Date;
use crate::audit::{self, EventFilter};
use crate::domain::{self, Person};
use crate::error::Error;
use crate::service::{self, Page, email, subscriptions};

/// Legal basis for processing (GDPR Art. 6).
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::domain::AuthorizationType")]
pub enum AuthorizationType {
    Consent,
    LegitimateInterest,
    PerformanceOfContract,
    LegalObligation,
    VitalInterests,
    PublicInterest,
    Other,
}

/// Where a person's data came from.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::domain::SourceType")]
pub enum SourceType {
    CrmSync,
    Import,
    ManualUpload,
    ChromeExtension,
    Other,
}

/// What an audit event records.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::audit::Action")]
pub enum AuditAction {
    PersonCreated,
    PersonUpdated,
    ComplianceCardUpdated,
    AuthorizationBulkUpdated,
    SourceBulkUpdated,
    Unsubscribed,
    Resubscribed,
    EmailSent,
    PersonExported,
    PeopleExported,
    PersonDataExported,
    PeopleImported,
    PersonErased,
    CrmSynced,
}

/// Whether an audited call went through.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::audit::Outcome")]
pub enum AuditOutcome {
    Success,
    Denied,
}

/// An opt-out or an opt-in.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::service::subscriptions::SubscriptionKind")]
pub enum SubscriptionEventType {
    OptOut,
    OptIn,
}

/// How a subscription change came about.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::service::subscriptions::Channel")]
pub enum SubscriptionChannel {
    UnsubscribeLink,
    CrmSync,
    User,
    AdminResubscribe,
}

/// Whether a person may be emailed.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum SubscriptionStatus {
    Subscribed,
    Unsubscribed,
}

const PERSON_CURSOR: &str = "person:";
const EVENT_CURSOR: &str = "event:";

fn encode_cursor(prefix: &str, value: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{value}"))
}

fn decode_cursor<T: std::str::FromStr>(prefix: &str, cursor: &str) -> Result<T, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix(prefix).and_then(|v| v.parse().ok()))
        .ok_or_else(|| Error::bad_input("after", "after is not a cursor from this list"))
}

/// Decodes a `people` cursor.
pub fn person_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, Error> {
    cursor.map(|c| decode_cursor(PERSON_CURSOR, c)).transpose()
}

/// Decodes an `auditEvents` cursor.
pub fn event_cursor(cursor: Option<&str>) -> Result<Option<i64>, Error> {
    cursor.map(|c| decode_cursor(EVENT_CURSOR, c)).transpose()
}

/// A connection's extra fields: the total, computed only when asked for.
pub struct PeopleTotal(pub domain::PeopleFilter);

#[Object]
impl PeopleTotal {
    /// How many people match the filter (all pages).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let (db, caller) = request(ctx)?;
        Ok(Box::pin(service::people::count_people(db, caller, &self.0)).await?)
    }
}

/// A connection's extra fields: the total, computed only when asked for.
pub struct EventTotal(pub EventFilter);

#[Object]
impl EventTotal {
    /// How many events match the filter (all pages).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let (db, caller) = request(ctx)?;
        Ok(Box::pin(service::audit_trail::count_events(db, caller, &self.0)).await?)
    }
}

/// A page of people.
pub type PersonConnection = Connection<PersonObject, PeopleTotal>;
/// A page of audit events.
pub type AuditEventConnection = Connection<AuditEventObject, EventTotal>;

/// Builds the `people` connection from a service page.
pub fn person_connection(
    page: Page<Person>,
    filter: domain::PeopleFilter,
    after: bool,
) -> PersonConnection {
    let edges = page.items.into_iter().map(|p| {
        (
            encode_cursor(PERSON_CURSOR, &p.id.to_string()),
            PersonObject(p),
        )
    });
    Connection::new(edges, after, page.has_next, PeopleTotal(filter))
}

/// Builds an audit-event connection from a service page.
pub fn event_connection(
    page: Page<audit::AuditEvent>,
    filter: EventFilter,
    after: bool,
) -> AuditEventConnection {
    let edges = page.items.into_iter().map(|e| {
        (
            encode_cursor(EVENT_CURSOR, &e.sequence.to_string()),
            AuditEventObject(e),
        )
    });
    Connection::new(edges, after, page.has_next, EventTotal(filter))
}

/// A contact.
pub struct PersonObject(pub Person);

impl Node for PersonObject {
    const CONNECTION: &'static str = "PersonConnection";
    const EDGE: &'static str = "PersonEdge";
}

/// A person's compliance card.
pub struct ComplianceCardObject(domain::ComplianceCard);

#[Object(name = "ComplianceCard")]
impl ComplianceCardObject {
    async fn authorization_type(&self) -> Option<AuthorizationType> {
        self.0.authorization.as_ref().map(|a| a.kind().into())
    }
    async fn authorization_other(&self) -> Option<&str> {
        self.0.authorization.as_ref().and_then(|a| a.other())
    }
    async fn consent_date(&self) -> Option<Date> {
        self.0
            .authorization
            .as_ref()
            .and_then(|a| a.consent_date())
            .map(Date)
    }
    async fn processing_purpose(&self) -> Option<&str> {
        self.0
            .authorization
            .as_ref()
            .and_then(|a| a.processing_purpose())
    }
    async fn source_type(&self) -> Option<SourceType> {
        self.0.source.as_ref().map(|s| s.kind().into())
    }
    async fn source_other(&self) -> Option<&str> {
        self.0.source.as_ref().and_then(|s| s.other())
    }
}

#[Object(name = "Person")]
impl PersonObject {
    /// The Person ID (UUID v7).
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn first_name(&self) -> Option<&str> {
        self.0.contact.first_name.as_deref()
    }
    async fn last_name(&self) -> Option<&str> {
        self.0.contact.last_name.as_deref()
    }
    async fn company(&self) -> Option<&str> {
        self.0.contact.company.as_deref()
    }
    async fn title(&self) -> Option<&str> {
        self.0.contact.title.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.contact.email.as_ref().map(|e| e.as_str())
    }
    async fn phone(&self) -> Option<&str> {
        self.0.contact.phone.as_deref()
    }
    async fn website(&self) -> Option<&str> {
        self.0.contact.website.as_deref()
    }
    async fn other(&self) -> Option<&str> {
        self.0.contact.other.as_deref()
    }
    async fn salesforce_id(&self) -> Option<&str> {
        self.0.contact.salesforce_id.as_deref()
    }
    async fn facebook(&self) -> Option<&str> {
        self.0.contact.facebook.as_deref()
    }
    async fn twitter(&self) -> Option<&str> {
        self.0.contact.twitter.as_deref()
    }
    async fn linkedin(&self) -> Option<&str> {
        self.0.contact.linkedin.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The legal basis and data source.
    async fn compliance_card(&self) -> Inline<ComplianceCardObject> {
        Inline(ComplianceCardObject(self.0.card.clone()))
    }
    /// Same as `complianceCard.authorizationType`.
    async fn authorization_type(&self) -> Option<AuthorizationType> {
        self.0.card.authorization.as_ref().map(|a| a.kind().into())
    }
    /// Same as `complianceCard.authorizationOther`.
    async fn authorization_other(&self) -> Option<&str> {
        self.0.card.authorization.as_ref().and_then(|a| a.other())
    }
    /// Same as `complianceCard.consentDate`.
    async fn consent_date(&self) -> Option<Date> {
        self.0
            .card
            .authorization
            .as_ref()
            .and_then(|a| a.consent_date())
            .map(Date)
    }
    /// Same as `complianceCard.processingPurpose`.
    async fn processing_purpose(&self) -> Option<&str> {
        self.0
            .card
            .authorization
            .as_ref()
            .and_then(|a| a.processing_purpose())
    }
    /// Same as `complianceCard.sourceType`.
    async fn source_type(&self) -> Option<SourceType> {
        self.0.card.source.as_ref().map(|s| s.kind().into())
    }
    /// Same as `complianceCard.sourceOther`.
    async fn source_other(&self) -> Option<&str> {
        self.0.card.source.as_ref().and_then(|s| s.other())
    }
    /// Whether the person has unsubscribed.
    async fn unsubscribed(&self) -> bool {
        self.0.subscription.unsubscribed
    }
    /// When the current unsubscribe took effect.
    async fn unsubscribed_at(&self) -> Option<DateTime<Utc>> {
        self.0.subscription.unsubscribed_at
    }
    async fn subscription_status(&self) -> SubscriptionStatus {
        if self.0.subscription.unsubscribed {
            SubscriptionStatus::Unsubscribed
        } else {
            SubscriptionStatus::Subscribed
        }
    }
    /// Every opt-out and opt-in, oldest first.
    async fn subscription_history(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<SubscriptionEventObject>> {
        let (db, caller) = request(ctx)?;
        Ok(Box::pin(subscriptions::history(db, caller, self.0.id))
            .await?
            .into_iter()
            .map(SubscriptionEventObject)
            .collect())
    }
    /// Emails sent to this person, newest first.
    async fn emails(&self, ctx: &Context<'_>) -> Result<Vec<EmailMessageObject>> {
        let (db, caller) = request(ctx)?;
        Ok(Box::pin(email::list_emails(db, caller, self.0.id))
            .await?
            .into_iter()
            .map(EmailMessageObject)
            .collect())
    }
    /// The audit events naming this person, newest first (compliance, admin).
    #[graphql(complexity = "crate::graphql::page_weight(first) * child_complexity")]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditEventConnection> {
        let (db, caller) = request(ctx)?;
        let first = service::page_size(first)?;
        let before = event_cursor(after.as_deref())?;
        let filter = EventFilter {
            person_id: Some(self.0.id),
            ..Default::default()
        };
        let page = Box::pin(service::audit_trail::list_events(
            db, caller, &filter, first, before,
        ))
        .await?;
        Ok(event_connection(page, filter, before.is_some()))
    }
}

/// Proof of re-consent recorded with an opt-in.
#[derive(SimpleObject)]
pub struct Reconsent {
    pub consent_date: Date,
    pub method: String,
    pub evidence: String,
}

/// One opt-out or opt-in.
pub struct SubscriptionEventObject(subscriptions::SubscriptionEvent);

#[Object(name = "SubscriptionEvent")]
impl SubscriptionEventObject {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn person_id(&self) -> Uuid {
        self.0.person_id
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> SubscriptionEventType {
        self.0.kind.into()
    }
    async fn channel(&self) -> SubscriptionChannel {
        self.0.channel.into()
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// For opt-ins: the re-consent evidence.
    async fn reconsent(&self) -> Option<Reconsent> {
        let e = &self.0;
        match (e.reconsent_date, &e.reconsent_method, &e.reconsent_evidence) {
            (Some(date), Some(method), Some(evidence)) => Some(Reconsent {
                consent_date: Date(date),
                method: method.clone(),
                evidence: evidence.clone(),
            }),
            _ => None,
        }
    }
}

/// One field's value before and after a change.
#[derive(SimpleObject)]
pub struct FieldChange {
    pub person_id: Uuid,
    pub field: String,
    pub before: Json<serde_json::Value>,
    pub after: Json<serde_json::Value>,
    /// True when the values were personal data of an erased person.
    pub erased: bool,
}

/// One accountability audit event.
pub struct AuditEventObject(pub audit::AuditEvent);

impl Node for AuditEventObject {
    const CONNECTION: &'static str = "AuditEventConnection";
    const EDGE: &'static str = "AuditEventEdge";
}

#[Object(name = "AuditEvent")]
impl AuditEventObject {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    /// Gap-free position in the chain (1, 2, 3 …).
    async fn sequence(&self) -> i64 {
        self.0.sequence
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn actor_roles(&self) -> &[String] {
        &self.0.actor_roles
    }
    async fn action(&self) -> AuditAction {
        self.0.action.into()
    }
    async fn outcome(&self) -> AuditOutcome {
        self.0.outcome.into()
    }
    async fn person_ids(&self) -> Vec<Uuid> {
        self.0.person_ids()
    }
    async fn changes(&self) -> Vec<FieldChange> {
        self.0
            .subjects
            .iter()
            .flat_map(|s| {
                s.changes.iter().map(|c| FieldChange {
                    person_id: s.person_id,
                    field: c.field.clone(),
                    before: Json(c.before.clone()),
                    after: Json(c.after.clone()),
                    erased: c.erased,
                })
            })
            .collect()
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// Action-specific facts (a bulk update's selection, a channel).
    async fn details(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.clone().map(Json)
    }
    async fn previous_hash(&self) -> &str {
        &self.0.previous_hash
    }
    async fn hash(&self) -> &str {
        &self.0.hash
    }
}

/// Where a message is in its delivery.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crate::service::email::EmailStatus")]
pub enum EmailStatus {
    Queued,
    Sending,
    Sent,
    Failed,
}

/// One header of a message.
#[derive(SimpleObject)]
pub struct EmailHeader {
    pub name: String,
    pub value: String,
}

/// An email in the outbox.
pub struct EmailMessageObject(pub email::EmailMessage);

#[Object(name = "EmailMessage")]
impl EmailMessageObject {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn person_id(&self) -> Uuid {
        self.0.person_id
    }
    /// The recipient address.
    async fn to(&self) -> &str {
        &self.0.to
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The text body, with the unsubscribe footer.
    async fn text_body(&self) -> &str {
        &self.0.text_body
    }
    /// The HTML body, with the unsubscribe footer.
    async fn html_body(&self) -> Option<&str> {
        self.0.html_body.as_deref()
    }
    /// Headers the server adds (`List-Unsubscribe`, `List-Unsubscribe-Post`).
    async fn headers(&self) -> Vec<EmailHeader> {
        self.0
            .headers
            .iter()
            .map(|h| EmailHeader {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect()
    }
    async fn status(&self) -> EmailStatus {
        self.0.status.into()
    }
    /// Delivery attempts so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The last delivery error.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
}
