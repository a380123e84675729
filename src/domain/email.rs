//! Email addresses: trimmed as entered, compared lower-cased.

use crate::error::Error;

/// Longest email accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// A syntactically plausible email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    /// Parses an address: trimmed, one `@` with text on both sides, a dot
    /// in the domain, no spaces or control characters.
    pub fn parse(field: &str, raw: &str) -> Result<Email, Error> {
        let display = raw.trim();
        let invalid = || Error::bad_input(field, format!("{field} is not a valid email address"));
        if display.is_empty() || display.len() > MAX_EMAIL_LEN {
            return Err(invalid());
        }
        if display.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = display.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(invalid());
        }
        Ok(Email {
            display: display.to_owned(),
            normalized: display.to_lowercase(),
        })
    }

    /// The address as entered (trimmed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The lower-cased comparison key.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// Wraps an address read back from storage.
    pub(crate) fn from_stored(display: String) -> Email {
        let normalized = display.to_lowercase();
        Email {
            display,
            normalized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_keyed_lower_case() {
        let e = Email::parse("email", "  Ada@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ada@Example.COM");
        assert_eq!(e.normalized(), "ada@example.com");
    }

    #[test]
    fn email_without_domain_dot_is_rejected() {
        assert!(Email::parse("email", "ada@localhost").is_err());
    }

    #[test]
    fn email_with_two_ats_is_rejected() {
        assert!(Email::parse("email", "a@b@c.com").is_err());
    }
}
