//! A local subscription change waiting to be written to the CRM.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub person_id: Uuid,
    /// The state to write: `HasOptedOutOfEmail`.
    pub opted_out: bool,
    pub created_at: DateTimeUtc,
    /// When it was written (or found to have no CRM contact); null while pending.
    pub pushed_at: Option<DateTimeUtc>,
    /// `PUSHED` or `NO_CRM_CONTACT`.
    pub outcome: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
