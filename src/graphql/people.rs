//! `person`, `people`, `createPerson`, `updatePerson`.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::compliance::ComplianceCardInput;
use super::inline::Inline;
use super::types::{
    AuthorizationType, PersonConnection, PersonObject, SourceType, person_connection, person_cursor,
};
use super::{integrations, request};
use crate::domain;
use crate::service::{self, people};

/// Which people to list; every set condition must hold.
#[derive(InputObject, Clone, Default)]
#[graphql(name = "PeopleFilter")]
pub struct PeopleFilterInput {
    /// Case-insensitive substring of first name, last name, email or company.
    pub search: Option<String>,
    pub authorization_types: Option<Vec<AuthorizationType>>,
    pub source_types: Option<Vec<SourceType>>,
    pub unsubscribed: Option<bool>,
    /// True: no legal basis recorded; false: one is.
    pub missing_authorization: Option<bool>,
    /// Created at or after (inclusive).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (exclusive).
    pub created_before: Option<DateTime<Utc>>,
}

impl From<PeopleFilterInput> for domain::PeopleFilter {
    fn from(f: PeopleFilterInput) -> Self {
        domain::PeopleFilter {
            search: f.search,
            authorization_types: f
                .authorization_types
                .map(|v| v.into_iter().map(Into::into).collect()),
            source_types: f
                .source_types
                .map(|v| v.into_iter().map(Into::into).collect()),
            unsubscribed: f.unsubscribed,
            missing_authorization: f.missing_authorization,
            created_after: f.created_after,
            created_before: f.created_before,
        }
    }
}

/// A new person's contact fields and, optionally, compliance card.
#[derive(InputObject)]
pub struct CreatePersonInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub other: Option<String>,
    pub salesforce_id: Option<String>,
    pub facebook: Option<String>,
    pub twitter: Option<String>,
    pub linkedin: Option<String>,
    pub compliance_card: Option<ComplianceCardInput>,
    /// Admin only: create even though the email belongs to an erased person.
    #[graphql(default)]
    pub override_suppression: bool,
    /// Why the suppression is overridden (required with `overrideSuppression`).
    pub override_reason: Option<String>,
}

/// Contact fields to change: an absent field is kept, `null` clears it.
#[derive(InputObject)]
pub struct UpdatePersonInput {
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub company: MaybeUndefined<String>,
    pub title: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub website: MaybeUndefined<String>,
    pub other: MaybeUndefined<String>,
    pub salesforce_id: MaybeUndefined<String>,
    pub facebook: MaybeUndefined<String>,
    pub twitter: MaybeUndefined<String>,
    pub linkedin: MaybeUndefined<String>,
}

fn patch(v: MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(Some(s)),
    }
}

#[derive(Default)]
pub struct PeopleQuery;

#[Object]
impl PeopleQuery {
    /// One person, or null when there is none with this id.
    async fn person(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Inline<PersonObject>>> {
        let (db, caller) = request(ctx)?;
        Ok(Box::pin(people::get_person(db, caller, id))
            .await?
            .map(|p| Inline(PersonObject(p))))
    }

    /// People matching `filter`, in creation order. `first` defaults to 50
    /// (1 to 500).
    #[graphql(complexity = "crate::graphql::page_weight(first) * child_complexity")]
    async fn people(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<PeopleFilterInput>,
    ) -> Result<PersonConnection> {
        let (db, caller) = request(ctx)?;
        let first = service::page_size(first)?;
        let after = person_cursor(after.as_deref())?;
        let filter: domain::PeopleFilter = filter.unwrap_or_default().into();
        let page = Box::pin(people::list_people(db, caller, &filter, first, after)).await?;
        Ok(person_connection(page, filter, after.is_some()))
    }
}

#[derive(Default)]
pub struct PeopleMutation;

#[Object]
impl PeopleMutation {
    /// Creates a person (sales, admin).
    async fn create_person(
        &self,
        ctx: &Context<'_>,
        input: CreatePersonInput,
    ) -> Result<PersonObject> {
        let (db, caller) = request(ctx)?;
        let contact = people::ContactInput {
            first_name: input.first_name,
            last_name: input.last_name,
            company: input.company,
            title: input.title,
            email: input.email,
            phone: input.phone,
            website: input.website,
            other: input.other,
            salesforce_id: input.salesforce_id,
            facebook: input.facebook,
            twitter: input.twitter,
            linkedin: input.linkedin,
        };
        let card = input.compliance_card.map(Into::into);
        let override_reason = match (input.override_suppression, input.override_reason) {
            (false, _) => None,
            (true, reason) => Some(reason.unwrap_or_default()),
        };
        let suppression = &integrations(ctx)?.suppression;
        let person = Box::pin(people::create_person(
            db,
            caller,
            suppression,
            &contact,
            card.as_ref(),
            override_reason.as_deref(),
        ))
        .await?;
        Ok(PersonObject(person))
    }

    /// Edits a person's contact fields (sales, admin).
    async fn update_person(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdatePersonInput,
    ) -> Result<PersonObject> {
        let (db, caller) = request(ctx)?;
        let p = people::ContactPatch {
            first_name: patch(input.first_name),
            last_name: patch(input.last_name),
            company: patch(input.company),
            title: patch(input.title),
            email: patch(input.email),
            phone: patch(input.phone),
            website: patch(input.website),
            other: patch(input.other),
            salesforce_id: patch(input.salesforce_id),
            facebook: patch(input.facebook),
            twitter: patch(input.twitter),
            linkedin: patch(input.linkedin),
        };
        let suppression = &integrations(ctx)?.suppression;
        Ok(PersonObject(
            Box::pin(people::update_person(db, caller, suppression, id, &p)).await?,
        ))
    }
}
