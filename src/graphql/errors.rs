//! Gives every GraphQL error its stable `extensions.code`: parse failures,
//! validation failures (limits included), consentry's own errors (mapped
//! by [`crate::error::Error::extensions`]) and argument coercion errors.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensionValues, Positioned, Response, ServerError, ServerResult, ValidationResult,
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
        })
    }
}

struct ErrorCodesExtension {
    max_aliases: usize,
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

fn count_aliases(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn document_aliases(doc: &ExecutableDocument) -> usize {
    let operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set))
        .sum();
    let fragments: usize = doc
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set))
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
        let aliases = document_aliases(&doc);
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
                    .message
                    .split_once("argument \"")
                    .and_then(|(_, rest)| rest.split('"').next())
                    .map(str::to_owned);
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
