//! `sendEmail`.

use async_graphql::{Context, Object, Result};
use uuid::Uuid;

use super::types::EmailMessageObject;
use super::{integrations, request};
use crate::service::email::{self, NewEmail};

#[derive(Default)]
pub struct EmailMutation;

#[Object]
impl EmailMutation {
    /// Queues an email to a person with an unsubscribe link in both bodies
    /// and the one-click unsubscribe headers (sales, admin).
    async fn send_email(
        &self,
        ctx: &Context<'_>,
        person_id: Uuid,
        subject: String,
        text_body: String,
        html_body: Option<String>,
    ) -> Result<EmailMessageObject> {
        let (db, caller) = request(ctx)?;
        let links = &integrations(ctx)?.links;
        let new = NewEmail {
            subject,
            text_body,
            html_body,
        };
        Ok(EmailMessageObject(
            Box::pin(email::send_email(db, caller, links, person_id, &new)).await?,
        ))
    }
}
