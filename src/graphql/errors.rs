//! Gives every GraphQL error its stable `extensions.code`: parse failures,
//! validation failures (limits included), consentry's own errors (mapped
//! by [`crate::error::Error::extensions`]) and argument coercion errors.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensionValues, Pos, Positioned, Response, ServerError, ServerResult, ValidationResult,
    Variables,
};

use crate::error::{Error, code};

/// Factory for the extension that codes parse and validation errors; also
/// enforces the alias limit. Only the checking schema carries it: an
/// extension makes the executor wrap every field it resolves, so errors of
/// execution are coded afterwards, by [`code_execution_errors`].
pub struct ErrorCodes {
    pub max_aliases: usize,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension {
            max_aliases: self.max_aliases,
        })
    }
}

struct ErrorCodesExtension {
    max_aliases: usize,
}

fn set_code(err: &mut ServerError, code: &str) {
    err.extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", code);
}

fn with_code(mut err: ServerError, code: &str) -> ServerError {
    set_code(&mut err, code);
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

/// Where each argument's value stands in a document, so an argument that
/// fails to coerce can be named in `extensions.field`.
pub type ArgumentPositions = HashMap<Pos, String>;

/// The document's argument positions.
pub fn argument_positions(doc: &ExecutableDocument) -> ArgumentPositions {
    let mut arguments = HashMap::new();
    visit_document(doc, &mut arguments);
    arguments
}

/// The document's alias count; fills `arguments`.
fn visit_document(doc: &ExecutableDocument, arguments: &mut ArgumentPositions) -> usize {
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
        let aliases = visit_document(&doc, &mut HashMap::new());
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
}

/// Gives the errors of a request's execution their codes: consentry's own
/// errors theirs (see [`crate::error::Error::extensions`]); the limits
/// checked with the variables and the choice of operation
/// `GRAPHQL_VALIDATION_FAILED`; an argument that does not coerce to its type
/// `BAD_USER_INPUT`, naming the argument.
pub fn code_execution_errors(
    response: &mut Response,
    request_id: &str,
    arguments: &ArgumentPositions,
) {
    for err in &mut response.errors {
        if let Some(e) = err.source::<Error>() {
            let mut ext = ErrorExtensionValues::default();
            for (k, v) in e.extensions(Some(request_id)) {
                ext.set(
                    k,
                    async_graphql::Value::from_json(v).unwrap_or(async_graphql::Value::Null),
                );
            }
            err.extensions = Some(ext);
        } else if has_code(err) {
            continue;
        } else if err.path.is_empty() {
            // Raised before any field ran.
            set_code(err, code::GRAPHQL_VALIDATION_FAILED);
        } else {
            let field = err.locations.first().and_then(|pos| arguments.get(pos));
            let field = field.cloned();
            set_code(err, code::BAD_USER_INPUT);
            if let (Some(field), Some(ext)) = (field, err.extensions.as_mut()) {
                ext.set("field", field);
            }
        }
    }
}
