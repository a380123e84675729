//! An erased person's email, as a keyed hash: it may not come back unless
//! an admin overrides the suppression.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "suppressed_email")]
pub struct Model {
    /// Hex HMAC-SHA256 of the lower-cased email.
    #[sea_orm(primary_key, auto_increment = false)]
    pub email_hash: String,
    pub suppressed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
