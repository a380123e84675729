//! One opt-out or opt-in of a person: the subscription history, never edited.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscription_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub person_id: Uuid,
    /// `OPT_OUT` or `OPT_IN`.
    pub kind: String,
    /// `UNSUBSCRIBE_LINK`, `CRM_SYNC`, `USER` or `ADMIN_RESUBSCRIBE`.
    pub channel: String,
    pub occurred_at: DateTimeUtc,
    pub actor: String,
    pub reason: Option<String>,
    pub reconsent_date: Option<Date>,
    pub reconsent_method: Option<String>,
    pub reconsent_evidence: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::person::Entity",
        from = "Column::PersonId",
        to = "super::person::Column::Id",
        on_delete = "Cascade"
    )]
    Person,
}

impl Related<super::person::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Person.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
