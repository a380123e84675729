//! The `people` filter, shared by the GraphQL query, bulk selections and
//! the CSV export.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AuthorizationType, SourceType};

/// Which people to list. Every set condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeopleFilter {
    /// Case-insensitive substring of first name, last name, email or company.
    pub search: Option<String>,
    pub authorization_types: Option<Vec<AuthorizationType>>,
    pub source_types: Option<Vec<SourceType>>,
    pub unsubscribed: Option<bool>,
    /// `true`: no legal basis recorded; `false`: one is.
    pub missing_authorization: Option<bool>,
    /// Inclusive.
    pub created_after: Option<DateTime<Utc>>,
    /// Exclusive.
    pub created_before: Option<DateTime<Utc>>,
}

impl Serialize for AuthorizationType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for SourceType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
