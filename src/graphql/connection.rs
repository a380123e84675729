//! The Relay connection shape (`edges { cursor node }`, `nodes`,
//! `pageInfo`) for consentry's lists, with each edge and node resolved
//! [`Inline`]. It serves the same schema as async-graphql's `Connection`,
//! whose edges resolve their two fields as separate boxed futures.

use std::borrow::Cow;

use async_graphql::connection::PageInfo;
use async_graphql::{ContainerType, Object, ObjectType, TypeName};

use super::inline::{Inline, InlineList};

/// A node type listed in a connection: the names of its connection and
/// edge types.
pub trait Node: ContainerType {
    /// `…Connection`.
    const CONNECTION: &'static str;
    /// `…Edge`.
    const EDGE: &'static str;
}

/// A page of `N`, with the connection's extra fields from `T`.
pub struct Connection<N, T> {
    edges: Vec<Inline<Edge<N>>>,
    has_previous_page: bool,
    has_next_page: bool,
    totals: T,
}

impl<N, T> Connection<N, T> {
    /// A page of `(cursor, node)` pairs in order.
    pub fn new(
        edges: impl IntoIterator<Item = (String, N)>,
        has_previous_page: bool,
        has_next_page: bool,
        totals: T,
    ) -> Self {
        Connection {
            edges: edges
                .into_iter()
                .map(|(cursor, node)| {
                    Inline(Edge {
                        cursor,
                        node: Inline(node),
                    })
                })
                .collect(),
            has_previous_page,
            has_next_page,
            totals,
        }
    }
}

impl<N: Node, T: ObjectType> TypeName for Connection<N, T> {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed(N::CONNECTION)
    }
}

#[Object(name_type)]
impl<N: Node, T: ObjectType> Connection<N, T> {
    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_previous_page: self.has_previous_page,
            has_next_page: self.has_next_page,
            start_cursor: self.edges.first().map(|e| e.0.cursor.clone()),
            end_cursor: self.edges.last().map(|e| e.0.cursor.clone()),
        }
    }

    /// A list of edges.
    async fn edges(&self) -> InlineList<&Inline<Edge<N>>> {
        InlineList(self.edges.iter().collect())
    }

    /// A list of nodes.
    async fn nodes(&self) -> InlineList<&Inline<N>> {
        InlineList(self.edges.iter().map(|e| &e.0.node).collect())
    }

    #[graphql(flatten)]
    async fn totals(&self) -> &T {
        &self.totals
    }
}

/// An edge in a connection.
pub struct Edge<N> {
    cursor: String,
    node: Inline<N>,
}

impl<N: Node> TypeName for Edge<N> {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed(N::EDGE)
    }
}

/// An edge in a connection.
#[Object(name_type)]
impl<N: Node> Edge<N> {
    /// The item at the end of the edge
    async fn node(&self) -> &Inline<N> {
        &self.node
    }

    /// A cursor for use in pagination
    async fn cursor(&self) -> &str {
        &self.cursor
    }
}
