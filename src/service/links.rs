//! Unsubscribe links: `{public URL}/unsubscribe/{token}`, where the token
//! is the person id and an HMAC-SHA256 of it under the unsubscribe secret,
//! URL-safe base64. Tokens never expire; a forged or altered one fails
//! verification in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: these MACs mean "unsubscribe this person" only.
const CONTEXT: &[u8] = b"consentry/unsubscribe/v1:";

/// Signs and checks unsubscribe links.
#[derive(Clone, Debug)]
pub struct UnsubscribeLinks {
    secret: Secret,
    base_url: String,
}

impl UnsubscribeLinks {
    /// Links under `base_url` (e.g. `https://consentry.example.com`).
    pub fn new(secret: Secret, base_url: &str) -> Self {
        UnsubscribeLinks {
            secret,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(CONTEXT);
        mac
    }

    /// The token for `person_id`.
    pub fn token(&self, person_id: Uuid) -> String {
        let mut mac = self.mac();
        mac.update(person_id.as_bytes());
        let mut bytes = person_id.as_bytes().to_vec();
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The full link for `person_id`.
    pub fn url(&self, person_id: Uuid) -> String {
        format!("{}/unsubscribe/{}", self.base_url, self.token(person_id))
    }

    /// The person a token names, if the token is genuine.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != 16 + 32 {
            return None;
        }
        let (id, tag) = bytes.split_at(16);
        let mut mac = self.mac();
        mac.update(id);
        mac.verify_slice(tag).ok()?;
        Uuid::from_slice(id).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> UnsubscribeLinks {
        UnsubscribeLinks::new(Secret::new("k"), "https://c.example/")
    }

    #[test]
    fn a_token_names_its_person() {
        let id = Uuid::now_v7();
        assert_eq!(links().verify(&links().token(id)), Some(id));
        assert!(
            links()
                .url(id)
                .starts_with("https://c.example/unsubscribe/")
        );
    }

    #[test]
    fn an_altered_token_is_refused() {
        let mut token = links().token(Uuid::now_v7()).into_bytes();
        token[3] = if token[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(links().verify(std::str::from_utf8(&token).unwrap()), None);
    }

    #[test]
    fn a_token_under_another_secret_is_refused() {
        let other = UnsubscribeLinks::new(Secret::new("other"), "https://c.example");
        assert_eq!(links().verify(&other.token(Uuid::now_v7())), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(links().verify("not base64 !"), None);
        assert_eq!(links().verify(""), None);
    }
}
