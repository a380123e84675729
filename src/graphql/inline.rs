//! Resolving an object's selected fields one after another in one future.
//!
//! async-graphql resolves every selected field of every object as its own
//! boxed future, driven by a `FuturesUnordered`. For an object whose fields
//! only read what the object already holds — a person on a page of 50 —
//! that machinery is most of the request's CPU time. [`Inline`] resolves the
//! same selection set with the same field resolvers (those the `#[Object]`
//! impl generates), awaiting each in turn; the response is the same.
//!
//! An object whose selection carries any directive (an `@include` that
//! held, say) is resolved the library's way instead, by
//! [`resolve_container_serial`]. Field-level extension hooks are not called
//! on this path; the schema that executes requests registers no extension
//! with such hooks (`graphql::documents`), and one added there would have to
//! keep these types on the library's path.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::resolve_container_serial;
use async_graphql::{
    ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult,
    Value,
};

/// `T`, resolved field after field in one future (see the module's docs).
pub struct Inline<T>(pub T);

impl<T: ContainerType> OutputType for Inline<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if has_directives(ctx, ctx.item) {
            return resolve_container_serial(ctx, &self.0).await;
        }
        let mut fields = IndexMap::with_capacity(ctx.item.node.items.len());
        resolve_set(ctx, &self.0, &mut fields).await?;
        Ok(if fields.is_empty() {
            Value::Null
        } else {
            Value::Object(fields)
        })
    }
}

/// A list of `T`, its items resolved one after another in one future
/// rather than as one future each.
pub struct InlineList<T>(pub Vec<T>);

impl<T: OutputType> OutputType for InlineList<T> {
    fn type_name() -> Cow<'static, str> {
        Vec::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Vec::<T>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut items = Vec::with_capacity(self.0.len());
        for (idx, item) in self.0.iter().enumerate() {
            let ctx_idx = ctx.with_index(idx);
            let value = item
                .resolve(&ctx_idx, field)
                .await
                .map_err(|e| ctx_idx.set_error_path(e))?;
            items.push(value);
        }
        Ok(Value::List(items))
    }
}

/// Whether any field selected on this object, in it or its fragments,
/// carries a directive.
fn has_directives(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<async_graphql::parser::types::SelectionSet>,
) -> bool {
    set.node.items.iter().any(|s| match &s.node {
        Selection::Field(f) => !f.node.directives.is_empty(),
        Selection::InlineFragment(f) => {
            !f.node.directives.is_empty() || has_directives(ctx, &f.node.selection_set)
        }
        Selection::FragmentSpread(s) => {
            !s.node.directives.is_empty()
                || ctx
                    .query_env
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_some_and(|f| has_directives(ctx, &f.node.selection_set))
        }
    })
}

/// Resolves the selection set `ctx` points at on `root` into `out`, as
/// async-graphql's `Fields::add_set` and `do_resolve_container` do: a
/// field's error is reported and the field left out; a fragment applies
/// when it names this type.
fn resolve_set<'a, T: ContainerType>(
    ctx: &'a ContextSelectionSet<'a>,
    root: &'a T,
    out: &'a mut IndexMap<Name, Value>,
) -> std::pin::Pin<Box<dyn Future<Output = ServerResult<()>> + Send + 'a>> {
    Box::pin(async move {
        for selection in &ctx.item.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let ctx_field = ctx.with_field(field);
                    let key = field.node.response_key().node.clone();
                    if field.node.name.node == "__typename" {
                        insert(
                            out,
                            key,
                            Value::String(root.introspection_type_name().into()),
                        );
                        continue;
                    }
                    match root.resolve_field(&ctx_field).await {
                        Ok(value) => insert(out, key, value.unwrap_or_default()),
                        Err(e) => ctx.add_error(e),
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let Some(fragment) = ctx.query_env.fragments.get(name) else {
                        return Err(ServerError::new(
                            format!(r#"Unknown fragment "{name}"."#),
                            Some(spread.pos),
                        ));
                    };
                    if applies::<T>(ctx, Some(&fragment.node.type_condition.node.on.node)) {
                        let ctx = ctx.with_selection_set(&fragment.node.selection_set);
                        resolve_set(&ctx, root, out).await?;
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| &c.node.on.node);
                    if applies::<T>(ctx, on) {
                        let ctx = ctx.with_selection_set(&fragment.node.selection_set);
                        resolve_set(&ctx, root, out).await?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// Whether a fragment on `on` (none: no condition) applies to `T`: it
/// names `T` or an interface `T` implements.
fn applies<T: ContainerType>(ctx: &ContextSelectionSet<'_>, on: Option<&Name>) -> bool {
    let Some(on) = on else { return true };
    let name = T::type_name();
    on.as_str() == name
        || ctx
            .schema_env
            .registry
            .implements
            .get(name.as_ref())
            .is_some_and(|interfaces| interfaces.contains(on.as_str()))
}

/// Adds a field's value, merging it into an earlier one under the same
/// response key (`card { a } card { b }`), as async-graphql does.
fn insert(out: &mut IndexMap<Name, Value>, key: Name, value: Value) {
    match out.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(value);
        }
        Entry::Occupied(mut slot) => merge(slot.get_mut(), value),
    }
}

fn merge(prev: &mut Value, value: Value) {
    match (prev, value) {
        (Value::Object(prev), Value::Object(obj)) => {
            for (k, v) in obj {
                insert(prev, k, v);
            }
        }
        (Value::List(prev), Value::List(list)) => {
            for (prev, item) in prev.iter_mut().zip(list) {
                merge(prev, item);
            }
        }
        _ => {}
    }
}
