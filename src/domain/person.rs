//! A person: contact fields, compliance card and subscription state.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{ComplianceCard, Email};

/// The contact fields of a person; blank values are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub other: Option<String>,
    pub salesforce_id: Option<String>,
    pub facebook: Option<String>,
    pub twitter: Option<String>,
    pub linkedin: Option<String>,
}

/// Whether a person may be emailed, and since when not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub unsubscribed: bool,
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

/// A contact with its compliance card and subscription state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: Uuid,
    pub contact: Contact,
    pub card: ComplianceCard,
    pub subscription: Subscription,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn opt(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

impl Contact {
    /// The contact fields by their API names, for audit records.
    pub fn audit_values(&self) -> [(&'static str, Value); 12] {
        [
            ("firstName", opt(self.first_name.as_deref())),
            ("lastName", opt(self.last_name.as_deref())),
            ("company", opt(self.company.as_deref())),
            ("title", opt(self.title.as_deref())),
            ("email", opt(self.email.as_ref().map(Email::as_str))),
            ("phone", opt(self.phone.as_deref())),
            ("website", opt(self.website.as_deref())),
            ("other", opt(self.other.as_deref())),
            ("salesforceId", opt(self.salesforce_id.as_deref())),
            ("facebook", opt(self.facebook.as_deref())),
            ("twitter", opt(self.twitter.as_deref())),
            ("linkedin", opt(self.linkedin.as_deref())),
        ]
    }
}

impl ComplianceCard {
    /// The authorization half by API names, for audit records.
    pub fn authorization_values(&self) -> [(&'static str, Value); 4] {
        let a = self.authorization.as_ref();
        [
            ("authorizationType", opt(a.map(|a| a.kind().as_str()))),
            ("authorizationOther", opt(a.and_then(|a| a.other()))),
            (
                "consentDate",
                opt(a
                    .and_then(|a| a.consent_date())
                    .map(|d| d.to_string())
                    .as_deref()),
            ),
            (
                "processingPurpose",
                opt(a.and_then(|a| a.processing_purpose())),
            ),
        ]
    }

    /// The source half by API names, for audit records.
    pub fn source_values(&self) -> [(&'static str, Value); 2] {
        let s = self.source.as_ref();
        [
            ("sourceType", opt(s.map(|s| s.kind().as_str()))),
            ("sourceOther", opt(s.and_then(|s| s.other()))),
        ]
    }
}
