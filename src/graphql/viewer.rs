//! `viewer`: who the token says the caller is.

use async_graphql::{Context, Object, Result, SimpleObject};

use super::request;

/// The authenticated caller.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The token's `sub`.
    pub subject: String,
    /// The caller's known roles (`admin`, `sales`, `compliance`).
    pub roles: Vec<String>,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller, as the bearer token identifies them.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let (_, caller) = request(ctx)?;
        Ok(Viewer {
            subject: caller.actor.subject.clone(),
            roles: caller.actor.role_names(),
        })
    }
}
