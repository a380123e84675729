//! Running GraphQL requests, with each distinct document parsed and checked
//! once. Frontends send the same few documents over and over with different
//! variables; parsing a document and checking it against every validation
//! rule is most of the cost of a small query, and neither depends on the
//! variables.
//!
//! So a request runs in two steps:
//! 1. the document is checked against every rule of the GraphQL
//!    specification (fields, arguments, fragments, variable usage, …)
//!    without its variables, by a schema that stops after validation — once
//!    per document, as a passed document is kept;
//! 2. the request runs with its variables on a schema that computes only
//!    what depends on them: the depth and complexity limits (a page's size
//!    may be a variable). A variable's value is coerced when its argument
//!    is read, and one that does not fit is `BAD_USER_INPUT` naming the
//!    argument — the same on the first request as on every later one.
//!
//! Most documents' limits do not depend on their variables at all: only a
//! field weighed by its arguments (a page's `first`) can make them, and
//! only when such an argument is a variable. For those documents the
//! verdict of the first request that passed the limits is kept with the
//! document, and later requests skip async-graphql's walk of it
//! ([`KnownLimits`]); a document that failed them is walked every time.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{Positioned, Request, Response, ServerError, ValidationMode, ValidationResult};

use crate::cache::TextCache;

use super::errors::{ArgumentPositions, ErrorCodes, argument_positions, code_execution_errors};
use super::{AppSchema, Limits, schema_builder};

/// Documents longer than this are checked every time (a 100,000-id bulk
/// update written inline would only fill the cache).
const MAX_CACHED_QUERY_BYTES: usize = 16 * 1024;
/// Distinct documents kept; when full, the cache starts over.
const MAX_CACHED_DOCUMENTS: usize = 512;

/// Runs requests on the schema; see the module documentation.
pub struct Executor {
    /// Every rule, no limits (they need the variables), no execution.
    checker: AppSchema,
    /// The limits, then execution.
    runner: AppSchema,
    /// Documents that passed the checker, by their text.
    checked: TextCache<Arc<Checked>>,
}

/// A document that passed the checker.
struct Checked {
    doc: ExecutableDocument,
    arguments: ArgumentPositions,
    /// The limits' verdict, kept once a request passed them when the
    /// document's limits do not depend on its variables.
    limits: OnceLock<ValidationResult>,
}

/// The checked document of the request being run, for [`KnownLimits`].
struct ThisDocument(Arc<Checked>);

impl Executor {
    pub fn new(limits: &Limits) -> Self {
        let checker = schema_builder(limits)
            .validation_mode(ValidationMode::Strict)
            .extension(ErrorCodes {
                max_aliases: limits.max_aliases,
            })
            .extension(CheckOnly)
            .finish();
        let runner = schema_builder(limits)
            .limit_depth(limits.max_depth)
            .limit_complexity(limits.max_complexity)
            .validation_mode(ValidationMode::Fast)
            .extension(KnownLimits::default())
            .finish();
        Executor {
            checker,
            runner,
            checked: TextCache::new(MAX_CACHED_DOCUMENTS, MAX_CACHED_QUERY_BYTES),
        }
    }

    /// Runs `request` (its data attached by the caller); `request_id` goes
    /// into the errors consentry reports.
    pub async fn execute(&self, mut request: Request, request_id: &str) -> Response {
        let checked = match self.checked(&request).await {
            Ok(checked) => checked,
            Err(mut verdict) => {
                code_execution_errors(&mut verdict, request_id, &ArgumentPositions::new());
                return verdict;
            }
        };
        request.set_parsed_query(checked.doc.clone());
        let request = request.data(ThisDocument(checked.clone()));
        let mut response = self.runner.execute(request).await;
        code_execution_errors(&mut response, request_id, &checked.arguments);
        response
    }

    /// The request's document, checked; or the checker's errors.
    async fn checked(&self, request: &Request) -> Result<Arc<Checked>, Response> {
        if let Some(known) = self.checked.get(&request.query) {
            return Ok(known);
        }
        let mut check = Request::new(request.query.clone());
        if let Some(name) = &request.operation_name {
            check = check.operation_name(name);
        }
        // A document that does not parse is left to the checker to report.
        let doc = async_graphql::parser::parse_query(&request.query).ok();
        if let Some(doc) = &doc {
            check.set_parsed_query(doc.clone());
        }
        let verdict = self.checker.execute(check).await;
        let Some(doc) = doc.filter(|_| verdict.is_ok()) else {
            return Err(verdict);
        };
        let checked = Arc::new(Checked {
            arguments: argument_positions(&doc),
            doc,
            limits: OnceLock::new(),
        });
        self.checked.insert(&request.query, checked.clone());
        Ok(checked)
    }

    /// The schema's SDL, as `schema.graphql` holds it.
    pub fn sdl(&self) -> String {
        super::sdl(&self.runner)
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

/// Stops a request after validation: the checker's verdict is its errors.
struct CheckOnly;

impl ExtensionFactory for CheckOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CheckOnly)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for CheckOnly {
    async fn execute(
        &self,
        _ctx: &ExtensionContext<'_>,
        _operation_name: Option<&str>,
        _next: NextExecute<'_>,
    ) -> Response {
        Response::default()
    }
}

/// Answers the limits of a document whose limits do not depend on its
/// variables with the verdict kept from an earlier request (see the module
/// documentation). Only the validation hook: no field-level hook, so the
/// objects resolved by `graphql::inline` stay equivalent to the library's.
#[derive(Default)]
struct KnownLimits(Arc<KnownLimitsExtension>);

#[derive(Default)]
struct KnownLimitsExtension;

impl ExtensionFactory for KnownLimits {
    fn create(&self) -> Arc<dyn Extension> {
        self.0.clone()
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for KnownLimitsExtension {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(ThisDocument(checked)) = ctx.data_opt::<ThisDocument>() else {
            return next.run(ctx).await;
        };
        if let Some(known) = checked.limits.get() {
            return Ok(*known);
        }
        let verdict = next.run(ctx).await?;
        if !weighs_variables(&checked.doc, &ctx.schema_env.registry) {
            // A concurrent request may have set it first: the same verdict.
            let _ = checked.limits.set(verdict);
        }
        Ok(verdict)
    }
}

/// Whether the document's complexity may depend on its variables: some
/// field weighed by its arguments (a field with its own complexity, such as
/// a page's) is given a variable in an argument. Fields are matched by
/// name, whatever their type, which can only answer yes too often. Depth
/// never depends on variables.
fn weighs_variables(doc: &ExecutableDocument, registry: &Registry) -> bool {
    let weighed: HashSet<&str> = registry
        .types
        .values()
        .filter_map(|ty| ty.fields())
        .flat_map(|fields| fields.values())
        .filter(|field| field.compute_complexity.is_some())
        .map(|field| field.name.as_str())
        .collect();
    let any = |set: &Positioned<SelectionSet>| set_weighs_variables(set, &weighed);
    doc.operations
        .iter()
        .any(|(_, op)| any(&op.node.selection_set))
        || doc.fragments.values().any(|f| any(&f.node.selection_set))
}

fn set_weighs_variables(set: &Positioned<SelectionSet>, weighed: &HashSet<&str>) -> bool {
    set.node.items.iter().any(|item| match &item.node {
        Selection::Field(f) => {
            (weighed.contains(f.node.name.node.as_str())
                // A value holding a variable has no constant form.
                && f.node.arguments.iter().any(|(_, v)| v.node.clone().into_const().is_none()))
                || set_weighs_variables(&f.node.selection_set, weighed)
        }
        Selection::InlineFragment(f) => set_weighs_variables(&f.node.selection_set, weighed),
        // The fragment's own selection is looked at with the fragments.
        Selection::FragmentSpread(_) => false,
    })
}
