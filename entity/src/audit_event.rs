//! One accountability audit event. Append-only: the database refuses UPDATE
//! and DELETE on this table by trigger.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    /// Gap-free position in the hash chain: 1, 2, 3 …
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    pub occurred_at: DateTimeUtc,
    pub actor: String,
    /// JSON array of role names, sorted.
    pub actor_roles: String,
    pub action: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    /// JSON object with action-specific facts (a filter, a row count), or null.
    pub details: Option<String>,
    /// Version of the canonical encoding the hash was computed over.
    pub encoding_version: i32,
    pub previous_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
