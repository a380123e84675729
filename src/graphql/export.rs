//! `exportPerson`, `exportPersonData`.

use async_graphql::{Context, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::request;
use crate::service::export;

/// One person's CSV export.
#[derive(SimpleObject)]
pub struct PersonExport {
    /// `person-{id}.csv`.
    pub filename: String,
    /// Header row and one data row.
    pub csv: String,
    pub exported_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Exports one person as CSV (any role; audited).
    async fn export_person(&self, ctx: &Context<'_>, id: Uuid) -> Result<PersonExport> {
        let (db, caller) = request(ctx)?;
        let e = Box::pin(export::export_person(db, caller, id)).await?;
        Ok(PersonExport {
            filename: e.filename,
            csv: e.csv,
            exported_at: e.exported_at,
        })
    }

    /// The access package (GDPR Art. 15/20): the person, their card,
    /// subscription history, emails and audit events, as one JSON document
    /// (compliance, admin; audited).
    async fn export_person_data(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<Json<serde_json::Value>> {
        let (db, caller) = request(ctx)?;
        Ok(Json(
            Box::pin(export::export_person_data(db, caller, id)).await?,
        ))
    }
}
