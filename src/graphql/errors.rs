//! Gives every GraphQL error its stable `extensions.code`: parse failures,
//! validation failures (limits included), consentry's own errors (mapped
//! by [`crate::error::Error::extensions`]) and argument coercion errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensionValues, Pos, Positioned, Response, ServerError, ServerResult, ValidationResult,
    Variables,
};

use crate::auth::Caller;
use crate::error::{Error, code};

/// Factory for the error-code extension; also enforces the alias limit.
pub struct ErrorCodes {
    pub max_aliases: usize,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension {
            max_aliases: self.max_aliases,
            arguments: Mutex::default(),
        })
    }
}

/// One instance per request.
struct ErrorCodesExtension {
    max_aliases: usize,
    /// Where each argument's value stands in the document, so an argument
    /// that fails to coerce can be named in `extensions.field`.
    arguments: Mutex<HashMap<Pos, String>>,
}

fn with_code(mut err: ServerError, code: &str) -> ServerError {
    let ext = err
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default);
    ext.set("code", code);
    err
}

fn has_code(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
}

/// Counts aliases and records argument positions in one selection set.
fn visit(set: &Positioned<SelectionSet>, arguments: &mut HashMap<Pos, String>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                for (name, value) in &f.node.arguments {
                    arguments.insert(value.pos, name.node.to_string());
                }
                usize::from(f.node.alias.is_some()) + visit(&f.node.selection_set, arguments)
            }
            Selection::InlineFragment(f) => visit(&f.node.selection_set, arguments),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// The document's alias count; fills `arguments`.
fn visit_document(doc: &ExecutableDocument, arguments: &mut HashMap<Pos, String>) -> usize {
    let operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| visit(&op.node.selection_set, arguments))
        .sum();
    let fragments: usize = doc
        .fragments
        .values()
        .map(|f| visit(&f.node.selection_set, arguments))
        .sum();
    operations + fragments
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, code::GRAPHQL_PARSE_FAILED))?;
        let mut arguments = HashMap::new();
        let aliases = visit_document(&doc, &mut arguments);
        if let Ok(mut known) = self.arguments.lock() {
            *known = arguments;
        }
        if aliases > self.max_aliases {
            return Err(with_code(
                ServerError::new(
                    format!(
                        "the document has {aliases} aliases; at most {} are allowed",
                        self.max_aliases
                    ),
                    None,
                ),
                code::GRAPHQL_VALIDATION_FAILED,
            ));
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, code::GRAPHQL_VALIDATION_FAILED))
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let request_id = ctx.data_opt::<Caller>().map(|c| c.request_id.as_str());
        for err in &mut response.errors {
            if let Some(e) = err.source::<Error>() {
                let mut ext = ErrorExtensionValues::default();
                for (k, v) in e.extensions(request_id) {
                    ext.set(
                        k,
                        async_graphql::Value::from_json(v).unwrap_or(async_graphql::Value::Null),
                    );
                }
                err.extensions = Some(ext);
            } else if !has_code(err) {
                // Arguments and variables that do not coerce to their types.
                let field = err
                    .locations
                    .first()
                    .and_then(|pos| self.arguments.lock().ok()?.get(pos).cloned());
                let ext = err
                    .extensions
                    .get_or_insert_with(ErrorExtensionValues::default);
                ext.set("code", code::BAD_USER_INPUT);
                if let Some(field) = field {
                    ext.set("field", field);
                }
            }
        }
        response
    }
}
