//! The compliance card: the legal basis for processing a person's data and
//! where the data came from. Built only through [`Authorization::new`] and
//! [`Source::new`], so a stored card is always valid.

use chrono::NaiveDate;

use super::Text;
use crate::error::Error;

/// Legal basis for processing (GDPR Art. 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthorizationType {
    Consent,
    LegitimateInterest,
    PerformanceOfContract,
    LegalObligation,
    VitalInterests,
    PublicInterest,
    Other,
}

/// Where a person's data came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceType {
    CrmSync,
    Import,
    ManualUpload,
    ChromeExtension,
    Other,
}

stored_enum!(AuthorizationType {
    Consent => "CONSENT",
    LegitimateInterest => "LEGITIMATE_INTEREST",
    PerformanceOfContract => "PERFORMANCE_OF_CONTRACT",
    LegalObligation => "LEGAL_OBLIGATION",
    VitalInterests => "VITAL_INTERESTS",
    PublicInterest => "PUBLIC_INTEREST",
    Other => "OTHER",
});

stored_enum!(SourceType {
    CrmSync => "CRM_SYNC",
    Import => "IMPORT",
    ManualUpload => "MANUAL_UPLOAD",
    ChromeExtension => "CHROME_EXTENSION",
    Other => "OTHER",
});

/// A recorded legal basis with exactly the details its type requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    kind: AuthorizationType,
    detail: AuthorizationDetail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AuthorizationDetail {
    None,
    Consent { date: NaiveDate, purpose: Text },
    Other(Text),
}

impl Authorization {
    /// Builds an authorization, checking DESIGN §1's rules: `consentDate`
    /// (not after `today`) and `processingPurpose` required for `CONSENT` and
    /// forbidden otherwise; `authorizationOther` required for `OTHER` and
    /// forbidden otherwise.
    pub fn new(
        kind: AuthorizationType,
        consent_date: Option<NaiveDate>,
        processing_purpose: Option<&str>,
        authorization_other: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, Error> {
        let forbid = |field: &str, present: bool| {
            if present {
                Err(Error::bad_input(
                    field,
                    format!(
                        "{field} is only allowed when authorizationType is {}",
                        match field {
                            "authorizationOther" => "OTHER",
                            _ => "CONSENT",
                        }
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let detail = match kind {
            AuthorizationType::Consent => {
                forbid("authorizationOther", authorization_other.is_some())?;
                let date = consent_date.ok_or_else(|| {
                    Error::bad_input(
                        "consentDate",
                        "consentDate is required when authorizationType is CONSENT",
                    )
                })?;
                if date > today {
                    return Err(Error::bad_input(
                        "consentDate",
                        "consentDate must not be in the future",
                    ));
                }
                let purpose = match processing_purpose {
                    Some(p) => Text::parse("processingPurpose", p)?,
                    None => {
                        return Err(Error::bad_input(
                            "processingPurpose",
                            "processingPurpose is required when authorizationType is CONSENT",
                        ));
                    }
                };
                AuthorizationDetail::Consent { date, purpose }
            }
            AuthorizationType::Other => {
                forbid("consentDate", consent_date.is_some())?;
                forbid("processingPurpose", processing_purpose.is_some())?;
                match authorization_other {
                    Some(o) => AuthorizationDetail::Other(Text::parse("authorizationOther", o)?),
                    None => {
                        return Err(Error::bad_input(
                            "authorizationOther",
                            "authorizationOther is required when authorizationType is OTHER",
                        ));
                    }
                }
            }
            _ => {
                forbid("consentDate", consent_date.is_some())?;
                forbid("processingPurpose", processing_purpose.is_some())?;
                forbid("authorizationOther", authorization_other.is_some())?;
                AuthorizationDetail::None
            }
        };
        Ok(Authorization { kind, detail })
    }

    /// Rebuilds an authorization from stored columns, which were written
    /// valid; `None` when they are not (a damaged row).
    pub(crate) fn from_stored(
        kind: AuthorizationType,
        consent_date: Option<NaiveDate>,
        processing_purpose: Option<String>,
        authorization_other: Option<String>,
    ) -> Option<Self> {
        let detail = match (kind, consent_date, processing_purpose, authorization_other) {
            (AuthorizationType::Consent, Some(date), Some(p), None) => {
                AuthorizationDetail::Consent {
                    date,
                    purpose: Text::from_stored(p),
                }
            }
            (AuthorizationType::Other, None, None, Some(o)) => {
                AuthorizationDetail::Other(Text::from_stored(o))
            }
            (AuthorizationType::Consent | AuthorizationType::Other, ..) => return None,
            (_, None, None, None) => AuthorizationDetail::None,
            _ => return None,
        };
        Some(Authorization { kind, detail })
    }

    /// The legal basis.
    pub fn kind(&self) -> AuthorizationType {
        self.kind
    }

    /// The consent date, for `CONSENT`.
    pub fn consent_date(&self) -> Option<NaiveDate> {
        match &self.detail {
            AuthorizationDetail::Consent { date, .. } => Some(*date),
            _ => None,
        }
    }

    /// The processing purpose, for `CONSENT`.
    pub fn processing_purpose(&self) -> Option<&str> {
        match &self.detail {
            AuthorizationDetail::Consent { purpose, .. } => Some(purpose.as_str()),
            _ => None,
        }
    }

    /// The free-text basis, for `OTHER`.
    pub fn other(&self) -> Option<&str> {
        match &self.detail {
            AuthorizationDetail::Other(t) => Some(t.as_str()),
            _ => None,
        }
    }
}

/// A recorded data source with its free text exactly when it is `OTHER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    kind: SourceType,
    other: Option<Text>,
}

impl Source {
    /// Builds a source: `sourceOther` required for `OTHER`, forbidden otherwise.
    pub fn new(kind: SourceType, source_other: Option<&str>) -> Result<Self, Error> {
        let other = match (kind, source_other) {
            (SourceType::Other, Some(o)) => Some(Text::parse("sourceOther", o)?),
            (SourceType::Other, None) => {
                return Err(Error::bad_input(
                    "sourceOther",
                    "sourceOther is required when sourceType is OTHER",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::bad_input(
                    "sourceOther",
                    "sourceOther is only allowed when sourceType is OTHER",
                ));
            }
            (_, None) => None,
        };
        Ok(Source { kind, other })
    }

    /// Rebuilds a source from stored columns; `None` for a damaged row.
    pub(crate) fn from_stored(kind: SourceType, other: Option<String>) -> Option<Self> {
        match (kind, other) {
            (SourceType::Other, Some(o)) => Some(Source {
                kind,
                other: Some(Text::from_stored(o)),
            }),
            (SourceType::Other, None) | (_, Some(_)) => None,
            (_, None) => Some(Source { kind, other: None }),
        }
    }

    /// Where the data came from.
    pub fn kind(&self) -> SourceType {
        self.kind
    }

    /// The free-text source, for `OTHER`.
    pub fn other(&self) -> Option<&str> {
        self.other.as_ref().map(Text::as_str)
    }
}

/// A person's compliance card. Either half may be unrecorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComplianceCard {
    pub authorization: Option<Authorization>,
    pub source: Option<Source>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::BadInput { field, .. } => field,
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[test]
    fn consent_needs_a_date() {
        let err = Authorization::new(AuthorizationType::Consent, None, Some("x"), None, today())
            .unwrap_err();
        assert_eq!(field_of(err), "consentDate");
    }

    #[test]
    fn consent_needs_a_purpose() {
        let err = Authorization::new(
            AuthorizationType::Consent,
            Some(today()),
            None,
            None,
            today(),
        )
        .unwrap_err();
        assert_eq!(field_of(err), "processingPurpose");
    }

    #[test]
    fn consent_date_may_not_be_in_the_future() {
        let tomorrow = today().succ_opt().unwrap();
        let err = Authorization::new(
            AuthorizationType::Consent,
            Some(tomorrow),
            Some("x"),
            None,
            today(),
        )
        .unwrap_err();
        assert_eq!(field_of(err), "consentDate");
    }

    #[test]
    fn consent_date_is_forbidden_for_legitimate_interest() {
        let err = Authorization::new(
            AuthorizationType::LegitimateInterest,
            Some(today()),
            None,
            None,
            today(),
        )
        .unwrap_err();
        assert_eq!(field_of(err), "consentDate");
    }

    #[test]
    fn other_needs_non_blank_text() {
        let err = Authorization::new(AuthorizationType::Other, None, None, Some("  "), today())
            .unwrap_err();
        assert_eq!(field_of(err), "authorizationOther");
    }

    #[test]
    fn source_other_is_forbidden_unless_other() {
        let err = Source::new(SourceType::Import, Some("x")).unwrap_err();
        assert_eq!(field_of(err), "sourceOther");
    }

    #[test]
    fn valid_consent_keeps_its_details() {
        let a = Authorization::new(
            AuthorizationType::Consent,
            Some(today()),
            Some(" news "),
            None,
            today(),
        )
        .unwrap();
        assert_eq!(a.consent_date(), Some(today()));
        assert_eq!(a.processing_purpose(), Some("news"));
        assert_eq!(a.other(), None);
    }

    #[test]
    fn names_round_trip() {
        for t in AuthorizationType::ALL {
            assert_eq!(AuthorizationType::parse(t.as_str()), Some(*t));
        }
        for t in SourceType::ALL {
            assert_eq!(SourceType::parse(t.as_str()), Some(*t));
        }
    }
}
