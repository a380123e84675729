//! A contact ("person"), with its compliance card and current subscription
//! state denormalised onto the row so a page of people is one query.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "person")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    /// Trimmed, as entered.
    pub email: Option<String>,
    /// Lower-cased email, unique among people: the comparison key.
    pub email_normalized: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub other: Option<String>,
    pub salesforce_id: Option<String>,
    pub facebook: Option<String>,
    pub twitter: Option<String>,
    pub linkedin: Option<String>,
    pub authorization_type: Option<String>,
    pub authorization_other: Option<String>,
    pub consent_date: Option<Date>,
    pub processing_purpose: Option<String>,
    pub source_type: Option<String>,
    pub source_other: Option<String>,
    pub unsubscribed: bool,
    pub unsubscribed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::subscription_event::Entity")]
    SubscriptionEvent,
}

impl Related<super::subscription_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SubscriptionEvent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
