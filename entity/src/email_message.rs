//! An email in the outbox: queued by `sendEmail`, delivered by the worker.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub person_id: Uuid,
    pub to_address: String,
    pub subject: String,
    /// With the unsubscribe footer appended.
    pub text_body: String,
    /// With the unsubscribe footer appended.
    pub html_body: Option<String>,
    /// JSON array of `{"name", "value"}`.
    pub headers: String,
    /// `QUEUED`, `SENDING`, `SENT` or `FAILED`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
