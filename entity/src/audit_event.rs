//! One accountability audit event. Written unchained in the transaction of
//! its change, chained right after commit. The database refuses DELETE
//! and every UPDATE except the one that chains an unchained row, by trigger.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Gap-free position in the hash chain: 1, 2, 3 … (none until chained).
    #[sea_orm(unique)]
    pub sequence: Option<i64>,
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
    /// Set when chained.
    pub previous_hash: Option<String>,
    /// Set when chained.
    pub hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
