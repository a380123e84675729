//! Trimmed, non-blank, bounded free text.

use crate::error::Error;

/// Longest free text accepted in any field, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Free text that is trimmed, not blank and at most [`MAX_TEXT_CHARS`] long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// Parses a required text; `field` names the input in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Text, Error> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Error::bad_input(
                field,
                format!("{field} must not be blank"),
            ));
        }
        if trimmed.chars().count() > MAX_TEXT_CHARS {
            return Err(Error::bad_input(
                field,
                format!("{field} must be at most {MAX_TEXT_CHARS} characters"),
            ));
        }
        Ok(Text(trimmed.to_owned()))
    }

    /// Parses an optional text: absent or blank becomes `None`.
    pub fn parse_optional(field: &str, raw: Option<&str>) -> Result<Option<Text>, Error> {
        match raw {
            Some(s) if !s.trim().is_empty() => Text::parse(field, s).map(Some),
            _ => Ok(None),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps text read back from storage, where it was stored valid.
    pub(crate) fn from_stored(s: String) -> Text {
        Text(s)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed() {
        assert_eq!(Text::parse("f", "  a b ").unwrap().as_str(), "a b");
    }

    #[test]
    fn blank_text_is_rejected_naming_the_field() {
        let err = Text::parse("processingPurpose", "   ").unwrap_err();
        assert!(matches!(err, Error::BadInput { field, .. } if field == "processingPurpose"));
    }

    #[test]
    fn blank_optional_text_is_none() {
        assert_eq!(Text::parse_optional("f", Some(" ")).unwrap(), None);
    }
}
