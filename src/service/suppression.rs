//! The suppression list: keyed hashes (HMAC-SHA256) of erased people's
//! emails, so they do not come back through `createPerson`, import or an
//! email change, unless an admin overrides it with a reason.

use entity::suppressed_email;
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use sha2::Sha256;

use crate::config::Secret;
use crate::domain::Email;
use crate::error::{Error, Result};

/// Domain separation from every other use of the secret.
const CONTEXT: &[u8] = b"consentry/suppression/v1:";

/// Hashes emails for the suppression list.
#[derive(Clone, Debug)]
pub struct Suppression {
    secret: Secret,
}

impl Suppression {
    /// Hashes under `secret` (consentry uses the unsubscribe secret; rotating
    /// it forgets the list).
    pub fn new(secret: Secret) -> Self {
        Suppression { secret }
    }

    /// The keyed hash of an email (case-insensitive).
    pub fn hash(&self, email: &Email) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(CONTEXT);
        mac.update(email.normalized().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `email` is suppressed.
    pub async fn contains<C: ConnectionTrait>(&self, conn: &C, email: &Email) -> Result<bool> {
        Ok(suppressed_email::Entity::find_by_id(self.hash(email))
            .one(conn)
            .await?
            .is_some())
    }

    /// Refuses a suppressed email with `CONFLICT`.
    pub async fn check<C: ConnectionTrait>(&self, conn: &C, email: Option<&Email>) -> Result<()> {
        match email {
            Some(e) if self.contains(conn, e).await? => Err(Error::Conflict(format!(
                "{} belongs to an erased person and is suppressed; an admin may override with overrideSuppression and a reason",
                e.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// Adds `email` to the list (inside the erasure's transaction).
    pub async fn add<C: ConnectionTrait>(&self, txn: &C, email: &Email) -> Result<()> {
        suppressed_email::Entity::insert(suppressed_email::ActiveModel {
            email_hash: Set(self.hash(email)),
            suppressed_at: Set(crate::time::now()),
        })
        .on_conflict(
            OnConflict::column(suppressed_email::Column::EmailHash)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }
}
