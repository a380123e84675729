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

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ValidationMode};

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
}

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
