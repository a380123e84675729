//! The GraphQL schema: one module per area, merged here. Resolvers parse
//! arguments, then call one service function with the request's caller.
//!
//! Each resolver awaits its service call boxed (`Box::pin(service::…)`):
//! async-graphql moves the future of a root field into a box of its own on
//! every request, and that future is as large as the largest resolver of the
//! merged root type, whose state holds a whole service call (SeaORM's futures
//! are large). Boxed at the call site, only a pointer is moved: a card edit
//! copied about 30,000 instructions' worth of future less (callgrind).

mod audit;
mod compliance;
mod connection;
mod crm;
mod documents;
mod email;
mod erasure;
mod errors;
mod export;
mod inline;
mod people;
mod scalars;
mod subscriptions;
mod types;
mod viewer;

use async_graphql::{
    Context, EmptySubscription, MergedObject, SDLExportOptions, Schema, SchemaBuilder,
};

pub use documents::Executor;

use crate::Integrations;
use crate::auth::Caller;
use crate::db::Db;
use crate::error::Error;

/// The schema consentry serves.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Root query type.
#[derive(MergedObject, Default)]
pub struct Query(viewer::ViewerQuery, people::PeopleQuery, audit::AuditQuery);

/// Root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    people::PeopleMutation,
    compliance::ComplianceMutation,
    subscriptions::SubscriptionMutation,
    email::EmailMutation,
    crm::CrmMutation,
    erasure::ErasureMutation,
    export::ExportMutation,
);

/// Limits on what one GraphQL document may ask for; checked before any
/// resolver runs.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub disable_introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 16,
            max_complexity: 20_000,
            max_aliases: 50,
            disable_introspection: false,
        }
    }
}

/// Fragment spreads nested deeper than this are refused.
const MAX_RECURSIVE_DEPTH: usize = 32;
/// Directives on one field beyond this are refused.
const MAX_DIRECTIVES: usize = 8;

/// The schema with what every use of it shares: the resolvers and the
/// document limits that need no variables. The executor adds the rest.
fn schema_builder(limits: &Limits) -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(MAX_DIRECTIVES);
    if limits.disable_introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// The SDL of the schema, as `schema.graphql` holds it.
fn sdl(schema: &AppSchema) -> String {
    schema.sdl_with_options(SDLExportOptions::new().sorted_fields())
}

/// The request's database handle and caller.
fn request<'a>(ctx: &Context<'a>) -> Result<(&'a Db, &'a Caller), Error> {
    match (ctx.data_opt::<Db>(), ctx.data_opt::<Caller>()) {
        (Some(db), Some(caller)) => Ok((db, caller)),
        _ => Err(anyhow::anyhow!("request data (database, caller) missing").into()),
    }
}

/// The request's integrations (unsubscribe links, the CRM).
fn integrations<'a>(ctx: &Context<'a>) -> Result<&'a Integrations, Error> {
    ctx.data_opt::<std::sync::Arc<Integrations>>()
        .map(|i| i.as_ref())
        .ok_or_else(|| anyhow::anyhow!("request data (integrations) missing").into())
}

/// The weight of a page in the complexity limit: its size (`first`, 50 when
/// absent), so a document is charged for every row it may return.
fn page_weight(first: Option<i32>) -> usize {
    first
        .map(i64::from)
        .unwrap_or(crate::service::DEFAULT_PAGE as i64)
        .clamp(1, crate::service::MAX_PAGE as i64) as usize
}
