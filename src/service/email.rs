//! Email: `sendEmail` puts a message with its unsubscribe footers and
//! RFC 2369/8058 headers into the outbox; the delivery worker sends queued
//! messages over SMTP, retrying with backoff, and never sends one twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::email_message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::links::UnsubscribeLinks;
use super::people::{lock_person, to_person};
use super::{authorize, require};
use crate::audit::{self, Action, FieldChange, NewEvent};
use crate::auth::{Caller, Permission};
use crate::db::Db;
use crate::domain::{Text, stored_enum};
use crate::error::{Error, Result};

/// Largest text or HTML body accepted, in bytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Attempts before a message is given up as `FAILED`.
pub const MAX_ATTEMPTS: i32 = 5;
/// First retry delay; doubled after each failed attempt.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// How long a claimed message may stay `SENDING` before it counts as
/// interrupted.
const SENDING_LEASE: Duration = Duration::from_secs(600);
/// Messages claimed per round.
const CLAIM_BATCH: u64 = 20;

/// Where a message is in its delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailStatus {
    Queued,
    Sending,
    Sent,
    Failed,
}

stored_enum!(EmailStatus {
    Queued => "QUEUED",
    Sending => "SENDING",
    Sent => "SENT",
    Failed => "FAILED",
});

/// One header of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailHeader {
    pub name: String,
    pub value: String,
}

/// A message in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailMessage {
    pub id: Uuid,
    pub person_id: Uuid,
    pub to: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub headers: Vec<EmailHeader>,
    pub status: EmailStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What a client asks to send.
#[derive(Clone, Debug)]
pub struct NewEmail {
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
}

fn to_message(m: email_message::Model) -> Result<EmailMessage> {
    let damaged = || Error::from(anyhow::anyhow!("email {} is damaged", m.id));
    Ok(EmailMessage {
        headers: serde_json::from_str(&m.headers).map_err(|_| damaged())?,
        status: EmailStatus::parse(&m.status).ok_or_else(damaged)?,
        id: m.id,
        person_id: m.person_id,
        to: m.to_address,
        subject: m.subject,
        text_body: m.text_body,
        html_body: m.html_body,
        attempts: m.attempts,
        last_error: m.last_error,
        created_at: m.created_at,
        sent_at: m.sent_at,
    })
}

/// Escapes text for HTML content and attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The text body with the unsubscribe footer.
fn text_with_footer(body: &str, link: &str) -> String {
    format!(
        "{}\n\n-- \nYou can unsubscribe from these emails at any time: {link}\n",
        body.trim_end()
    )
}

/// The HTML body with the unsubscribe footer, placed before `</body>`
/// when there is one.
fn html_with_footer(body: &str, link: &str) -> String {
    let footer = format!(
        "<p style=\"font-size:12px;color:#555\">You can <a href=\"{}\">unsubscribe</a> from these emails at any time.</p>",
        html_escape(link)
    );
    match body.to_ascii_lowercase().rfind("</body>") {
        Some(i) => format!("{}{footer}\n{}", &body[..i], &body[i..]),
        None => format!("{body}\n{footer}"),
    }
}

fn body(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::bad_input(
            field,
            format!("{field} must not be blank"),
        ));
    }
    if value.len() > MAX_BODY_BYTES {
        return Err(Error::bad_input(
            field,
            format!("{field} must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Queues an email to a person (`EMAIL_SENT`; sales, admin). Refused for an
/// unsubscribed person (`CONFLICT`) and for one without an email address or
/// a recorded legal basis (`BAD_USER_INPUT`).
#[tracing::instrument(skip(db, caller, links, email))]
pub async fn send_email(
    db: &Db,
    caller: &Caller,
    links: &UnsubscribeLinks,
    person_id: Uuid,
    email: &NewEmail,
) -> Result<EmailMessage> {
    authorize(
        db,
        caller,
        Permission::EditPeople,
        Action::EmailSent,
        &[person_id],
    )
    .await?;
    let subject = Text::parse("subject", &email.subject)?;
    if subject.as_str().contains(['\r', '\n']) {
        return Err(Error::bad_input("subject", "subject must be one line"));
    }
    body("textBody", &email.text_body)?;
    if let Some(html) = &email.html_body {
        body("htmlBody", html)?;
    }

    let txn = db.begin_write().await?;
    let person = to_person(lock_person(&*txn, person_id).await?)?;
    if person.subscription.unsubscribed {
        return Err(Error::Conflict(format!(
            "person {person_id} has unsubscribed"
        )));
    }
    let Some(to) = person.contact.email.as_ref() else {
        return Err(Error::bad_input(
            "personId",
            "the person has no email address",
        ));
    };
    if person.card.authorization.is_none() {
        return Err(Error::bad_input(
            "personId",
            "processing needs a basis: record the person's authorization type first",
        ));
    }
    let link = links.url(person_id);
    let headers = vec![
        EmailHeader {
            name: "List-Unsubscribe".into(),
            value: format!("<{link}>"),
        },
        EmailHeader {
            name: "List-Unsubscribe-Post".into(),
            value: "List-Unsubscribe=One-Click".into(),
        },
    ];
    let now = crate::time::now();
    let row = email_message::Model {
        id: Uuid::now_v7(),
        person_id,
        to_address: to.as_str().to_owned(),
        subject: subject.as_str().to_owned(),
        text_body: text_with_footer(&email.text_body, &link),
        html_body: email
            .html_body
            .as_deref()
            .map(|h| html_with_footer(h, &link)),
        headers: serde_json::to_string(&headers).map_err(anyhow::Error::from)?,
        status: EmailStatus::Queued.as_str().to_owned(),
        attempts: 0,
        last_error: None,
        next_attempt_at: now,
        created_at: now,
        sent_at: None,
    };
    email_message::Entity::insert(email_message::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await?;
    let changes = vec![FieldChange::new(
        "emailSubject",
        serde_json::Value::Null,
        subject.as_str().into(),
    )];
    audit::append(
        &txn,
        NewEvent::success(caller, Action::EmailSent)
            .subject(person_id, changes)
            .details(serde_json::json!({ "emailId": row.id })),
    )
    .await?;
    txn.commit().await?;
    to_message(row)
}

/// A person's emails, newest first.
#[tracing::instrument(skip(db, caller))]
pub async fn list_emails(db: &Db, caller: &Caller, person_id: Uuid) -> Result<Vec<EmailMessage>> {
    require(caller, Permission::ReadPeople)?;
    email_message::Entity::find()
        .filter(email_message::Column::PersonId.eq(person_id))
        .order_by_desc(email_message::Column::CreatedAt)
        .order_by_desc(email_message::Column::Id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(to_message)
        .collect()
}

/// Sends queued messages over SMTP.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for an SMTP URL (`smtp://host:port`, `smtps://user:pass@host`,
    /// `smtp://host?tls=required`) sending as `from`.
    pub fn new(smtp_url: &str, from: &str) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Mailer {
            transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)?
                .timeout(Some(Duration::from_secs(30)))
                .build(),
            from: from.parse()?,
        })
    }

    fn build(&self, m: &email_message::Model) -> anyhow::Result<Message> {
        let headers: Vec<EmailHeader> = serde_json::from_str(&m.headers)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(m.to_address.parse()?)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@consentry>", m.id)));
        for h in headers {
            let name = HeaderName::new_from_ascii(h.name)?;
            builder = builder.raw_header(HeaderValue::new(name, h.value));
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(m.text_body.clone());
        Ok(match &m.html_body {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            )?,
            None => builder.singlepart(text)?,
        })
    }
}

/// What one delivery round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
}

fn later(from: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    from + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

/// Sends every due message once. A message is marked `SENDING` before it
/// is handed to SMTP; one found still `SENDING` after its lease (the process
/// died mid-send) is marked `FAILED`, never sent again.
#[tracing::instrument(skip(db, mailer))]
pub async fn deliver_due(db: &Db, mailer: &Mailer) -> Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let now = crate::time::now();
    let txn = db.begin_write().await?;
    let interrupted = email_message::Entity::update_many()
        .col_expr(
            email_message::Column::Status,
            Expr::value(EmailStatus::Failed.as_str()),
        )
        .col_expr(
            email_message::Column::LastError,
            Expr::value("delivery was interrupted; not retried so it is never sent twice"),
        )
        .filter(email_message::Column::Status.eq(EmailStatus::Sending.as_str()))
        .filter(email_message::Column::NextAttemptAt.lt(now))
        .exec(&*txn)
        .await?;
    report.failed += interrupted.rows_affected as u32;
    let mut due = email_message::Entity::find()
        .filter(email_message::Column::Status.eq(EmailStatus::Queued.as_str()))
        .filter(email_message::Column::NextAttemptAt.lte(now))
        .order_by_asc(email_message::Column::NextAttemptAt)
        .limit(CLAIM_BATCH);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let claimed = due.all(&*txn).await?;
    if !claimed.is_empty() {
        email_message::Entity::update_many()
            .col_expr(
                email_message::Column::Status,
                Expr::value(EmailStatus::Sending.as_str()),
            )
            .col_expr(
                email_message::Column::Attempts,
                Expr::col(email_message::Column::Attempts).add(1),
            )
            .col_expr(
                email_message::Column::NextAttemptAt,
                Expr::value(later(now, SENDING_LEASE)),
            )
            .filter(email_message::Column::Id.is_in(claimed.iter().map(|m| m.id)))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await?;

    for m in claimed {
        let attempts = m.attempts + 1;
        let result = match mailer.build(&m) {
            Ok(message) => mailer
                .transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| {
                    let permanent = e.is_permanent();
                    (e.to_string(), permanent)
                }),
            Err(e) => Err((e.to_string(), true)),
        };
        let now = crate::time::now();
        let mut row = email_message::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(m.id),
            ..Default::default()
        };
        match result {
            Ok(()) => {
                row.status = Set(EmailStatus::Sent.as_str().to_owned());
                row.sent_at = Set(Some(now));
                row.last_error = Set(None);
                report.sent += 1;
            }
            Err((error, permanent)) => {
                tracing::warn!(email = %m.id, attempts, %error, "email delivery failed");
                row.last_error = Set(Some(error));
                if permanent || attempts >= MAX_ATTEMPTS {
                    row.status = Set(EmailStatus::Failed.as_str().to_owned());
                    report.failed += 1;
                } else {
                    let delay = FIRST_RETRY * 2u32.saturating_pow((attempts - 1) as u32);
                    row.status = Set(EmailStatus::Queued.as_str().to_owned());
                    row.next_attempt_at = Set(later(now, delay));
                    report.retrying += 1;
                }
            }
        }
        let txn = db.begin_write().await?;
        email_message::Entity::update(row).exec(&*txn).await?;
        txn.commit().await?;
    }
    Ok(report)
}

/// Runs [`deliver_due`] every `every` until the process ends.
pub fn spawn_delivery(db: Db, mailer: Mailer, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match deliver_due(&db, &mailer).await {
                Ok(r) if r != DeliveryReport::default() => {
                    tracing::info!(?r, "email delivery round")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = ?e, "email delivery round failed"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_footer_goes_before_the_closing_body_tag_escaped() {
        let html = html_with_footer(
            "<html><body><p>Hi</p></BODY></html>",
            "https://x/u?a=1&b=\"2\"",
        );
        assert!(
            html.contains("href=\"https://x/u?a=1&amp;b=&quot;2&quot;\""),
            "{html}"
        );
        assert!(html.find("unsubscribe").unwrap() < html.find("</BODY>").unwrap());
    }

    #[test]
    fn the_text_footer_carries_the_link() {
        assert!(
            text_with_footer("Hello\n\n", "https://x/u/t")
                .ends_with("at any time: https://x/u/t\n")
        );
    }
}
