//! `updateComplianceCard`, `bulkUpdateAuthorization`, `bulkUpdateSource`.

use async_graphql::{ComplexObject, Context, InputObject, Object, Result, SimpleObject};
use uuid::Uuid;

use super::people::PeopleFilterInput;
use super::request;
use super::scalars::Date;
use super::types::{AuditEventObject, AuthorizationType, PersonObject, SourceType};
use crate::error::Error;
use crate::service::compliance::{self, Selection};

/// A whole compliance card; it replaces the stored one.
#[derive(InputObject, Clone, Default)]
pub struct ComplianceCardInput {
    pub authorization_type: Option<AuthorizationType>,
    /// Required when the type is OTHER, forbidden otherwise.
    pub authorization_other: Option<String>,
    /// Required when the type is CONSENT (not in the future), forbidden otherwise.
    pub consent_date: Option<Date>,
    /// Required when the type is CONSENT, forbidden otherwise.
    pub processing_purpose: Option<String>,
    pub source_type: Option<SourceType>,
    /// Required when the source is OTHER, forbidden otherwise.
    pub source_other: Option<String>,
}

impl From<ComplianceCardInput> for compliance::CardInput {
    fn from(c: ComplianceCardInput) -> Self {
        compliance::CardInput {
            authorization: compliance::AuthorizationInput {
                authorization_type: c.authorization_type.map(Into::into),
                authorization_other: c.authorization_other,
                consent_date: c.consent_date.map(|d| d.0),
                processing_purpose: c.processing_purpose,
            },
            source: compliance::SourceInput {
                source_type: c.source_type.map(Into::into),
                source_other: c.source_other,
            },
        }
    }
}

/// The authorization half of a card, for a bulk update.
#[derive(InputObject)]
pub struct AuthorizationInput {
    pub authorization_type: AuthorizationType,
    pub authorization_other: Option<String>,
    pub consent_date: Option<Date>,
    pub processing_purpose: Option<String>,
}

/// The source half of a card, for a bulk update.
#[derive(InputObject)]
pub struct SourceInput {
    pub source_type: SourceType,
    pub source_other: Option<String>,
}

/// Which people a bulk update applies to: exactly one of `ids` or `filter`.
#[derive(InputObject)]
pub struct PersonSelection {
    pub ids: Option<Vec<Uuid>>,
    pub filter: Option<PeopleFilterInput>,
}

impl TryFrom<PersonSelection> for Selection {
    type Error = Error;
    fn try_from(s: PersonSelection) -> Result<Self, Error> {
        match (s.ids, s.filter) {
            (Some(ids), None) => Ok(Selection::Ids(ids)),
            (None, Some(filter)) => Ok(Selection::Filter(filter.into())),
            _ => Err(Error::bad_input(
                "selection",
                "give exactly one of selection.ids or selection.filter",
            )),
        }
    }
}

/// What a bulk update did.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct BulkUpdateResult {
    /// How many people were updated.
    pub updated_count: u64,
    #[graphql(skip)]
    pub result: compliance::BulkResult,
}

#[ComplexObject]
impl BulkUpdateResult {
    /// The one audit event naming all of them (read only when asked for).
    async fn audit_event(&self, ctx: &Context<'_>) -> Result<AuditEventObject> {
        let (db, _) = request(ctx)?;
        Ok(AuditEventObject(
            Box::pin(compliance::bulk_event(db, &self.result)).await?,
        ))
    }
}

#[derive(Default)]
pub struct ComplianceMutation;

#[Object]
impl ComplianceMutation {
    /// Replaces a person's compliance card (sales, admin).
    async fn update_compliance_card(
        &self,
        ctx: &Context<'_>,
        person_id: Uuid,
        input: ComplianceCardInput,
    ) -> Result<PersonObject> {
        let (db, caller) = request(ctx)?;
        let card = input.into();
        Ok(PersonObject(
            Box::pin(compliance::update_compliance_card(
                db, caller, person_id, &card,
            ))
            .await?,
        ))
    }

    /// Sets the authorization half of many cards at once, all or nothing
    /// (sales, admin).
    async fn bulk_update_authorization(
        &self,
        ctx: &Context<'_>,
        selection: PersonSelection,
        input: AuthorizationInput,
    ) -> Result<BulkUpdateResult> {
        let (db, caller) = request(ctx)?;
        let selection = Selection::try_from(selection)?;
        let input = compliance::AuthorizationInput {
            authorization_type: Some(input.authorization_type.into()),
            authorization_other: input.authorization_other,
            consent_date: input.consent_date.map(|d| d.0),
            processing_purpose: input.processing_purpose,
        };
        let result = Box::pin(compliance::bulk_update_authorization(
            db, caller, &selection, &input,
        ))
        .await?;
        Ok(BulkUpdateResult {
            updated_count: result.updated_count,
            result,
        })
    }

    /// Sets the source half of many cards at once, all or nothing
    /// (sales, admin).
    async fn bulk_update_source(
        &self,
        ctx: &Context<'_>,
        selection: PersonSelection,
        input: SourceInput,
    ) -> Result<BulkUpdateResult> {
        let (db, caller) = request(ctx)?;
        let selection = Selection::try_from(selection)?;
        let input = compliance::SourceInput {
            source_type: Some(input.source_type.into()),
            source_other: input.source_other,
        };
        let result = Box::pin(compliance::bulk_update_source(
            db, caller, &selection, &input,
        ))
        .await?;
        Ok(BulkUpdateResult {
            updated_count: result.updated_count,
            result,
        })
    }
}
