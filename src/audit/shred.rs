//! Crypto-shredding. Personal values in audit changes (every contact field
//! and every free text) are stored sealed with AES-256-GCM under a key of
//! their own person, kept in `person_key`. The hash chain covers the stored
//! (sealed) form, so erasure can delete the key, leaving those values
//! unreadable (`null`, `erased: true`) while every hash still verifies.
//!
//! Stored form of a sealed value: `{"sealed": base64url(nonce ‖ ciphertext)}`,
//! with the person id and field name as associated data, so a sealed value
//! cannot be moved to another person or field.

use std::borrow::Cow;
use std::collections::HashMap;

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::person_key;
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{FieldChange, Subject};
use crate::error::{Error, Result};

/// Fields whose values are personal data.
const PERSONAL: &[&str] = &[
    "firstName",
    "lastName",
    "company",
    "title",
    "email",
    "phone",
    "website",
    "other",
    "salesforceId",
    "facebook",
    "twitter",
    "linkedin",
    "authorizationOther",
    "processingPurpose",
    "sourceOther",
    "reconsentMethod",
    "reconsentEvidence",
    "emailSubject",
];

/// Ids per `IN (…)` and keys per INSERT.
const CHUNK: usize = 5_000;

/// Whether `field` holds personal data (and is stored sealed).
pub fn is_personal(field: &str) -> bool {
    PERSONAL.contains(&field)
}

/// Bytes of system randomness [`Randomness`] fetches first; each later
/// fetch is twice the last, up to [`MAX_RANDOM_BLOCK`].
const RANDOM_BLOCK: usize = 1024;
/// The most bytes of system randomness [`Randomness`] fetches at a time.
const MAX_RANDOM_BLOCK: usize = 64 * 1024;

/// System randomness for one sealing pass, fetched a block at a time: a
/// bulk update seals thousands of values and creates thousands of keys,
/// and one `getrandom` system call per 12-byte nonce or 32-byte key was
/// a tenth of its time in the server. A pass that seals one value fetches
/// 1 KiB; one that keeps taking fetches blocks twice as large each time
/// (for a bulk update of 100,000 people, which seals in chunks of 5,000,
/// 124 system calls where 1 KiB blocks took 1,089). Every byte is handed
/// out once, and its copy in the block is zeroed as it is.
struct Randomness {
    block: Vec<u8>,
    used: usize,
}

impl Randomness {
    fn new() -> Self {
        Randomness {
            block: Vec::new(),
            used: 0,
        }
    }

    /// `N` fresh random bytes.
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        const { assert!(N <= RANDOM_BLOCK) };
        if self.block.len() - self.used < N {
            // The few bytes left are never handed out: zeroed, not freed.
            self.block.fill(0);
            let size = (self.block.len() * 2).clamp(RANDOM_BLOCK, MAX_RANDOM_BLOCK);
            self.block = vec![0; size];
            getrandom::fill(&mut self.block)
                .map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
            self.used = 0;
        }
        let taken = &mut self.block[self.used..self.used + N];
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(taken);
        taken.fill(0);
        self.used += N;
        Ok(bytes)
    }
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(key)
        .map_err(|_| anyhow::anyhow!("a person key is not 32 bytes").into())
}

fn aad(person_id: Uuid, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + field.len());
    set_aad(&mut aad, person_id, field);
    aad
}

/// The associated data of `person_id`'s value of `field`, in `aad`.
fn set_aad(aad: &mut Vec<u8>, person_id: Uuid, field: &str) {
    aad.clear();
    aad.extend_from_slice(person_id.as_bytes());
    aad.extend_from_slice(field.as_bytes());
}

/// Seals values one after another, reusing what each needs: randomness
/// fetched a block at a time, the associated data, and the buffer a value
/// is encrypted in, in place. A bulk update seals a value for each of
/// thousands of people, and each value had buffers of its own before.
struct Sealer {
    randomness: Randomness,
    aad: Vec<u8>,
    /// Nonce, then the value's JSON encrypted in place, then the tag.
    bytes: Vec<u8>,
}

impl Sealer {
    fn new(randomness: Randomness) -> Self {
        Sealer {
            randomness,
            aad: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// `value` of `person_id`'s `field` sealed with `cipher`, in its stored
    /// form.
    fn seal(
        &mut self,
        cipher: &Aes256Gcm,
        person_id: Uuid,
        field: &str,
        value: &Value,
    ) -> Result<Value> {
        let nonce: [u8; 12] = self.randomness.take()?;
        self.bytes.clear();
        self.bytes.extend_from_slice(&nonce);
        serde_json::to_writer(&mut self.bytes, value).map_err(anyhow::Error::from)?;
        set_aad(&mut self.aad, person_id, field);
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                &self.aad,
                (&mut self.bytes[nonce.len()..]).into(),
            )
            .map_err(|_| anyhow::anyhow!("sealing an audit value failed"))?;
        self.bytes.extend_from_slice(&tag);
        Ok(json!({ "sealed": URL_SAFE_NO_PAD.encode(&self.bytes) }))
    }
}

/// The sealed payload of a stored value, if it is sealed.
fn sealed_payload(value: &Value) -> Option<&str> {
    value
        .as_object()
        .filter(|o| o.len() == 1)?
        .get("sealed")?
        .as_str()
}

fn open_value(cipher: &Aes256Gcm, person_id: Uuid, field: &str, payload: &str) -> Result<Value> {
    let damaged = || {
        Error::from(anyhow::anyhow!(
            "a sealed audit value of {person_id} does not open"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| damaged())?;
    if bytes.len() < 12 {
        return Err(damaged());
    }
    let (nonce, sealed) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| damaged())?;
    let aad = aad(person_id, field);
    let plaintext = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| damaged())?;
    serde_json::from_slice(&plaintext).map_err(|_| damaged())
}

async fn load_keys<C: ConnectionTrait>(conn: &C, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<u8>>> {
    let mut keys = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, Vec<u8>)> = person_key::Entity::find()
            .select_only()
            .columns([person_key::Column::PersonId, person_key::Column::Key])
            .filter(crate::db::uuid_in(
                conn.get_database_backend(),
                person_key::Column::PersonId,
                chunk.iter().copied(),
            ))
            .into_tuple()
            .all(conn)
            .await?;
        keys.extend(rows);
    }
    Ok(keys)
}

/// Seals the personal values of `subjects` for storage, creating keys for
/// people who have none yet (inside the caller's transaction). A change of
/// no personal field is returned as it is, borrowed.
pub(crate) async fn seal<'s, C: ConnectionTrait>(
    txn: &C,
    subjects: &'s [Subject],
) -> Result<Vec<Vec<Cow<'s, FieldChange>>>> {
    let needs_key: Vec<Uuid> = subjects
        .iter()
        .filter(|s| {
            s.changes
                .iter()
                .any(|c| is_personal(&c.field) && !(c.before.is_null() && c.after.is_null()))
        })
        .map(|s| s.person_id)
        .collect();
    let mut keys = load_keys(txn, &needs_key).await?;
    let mut randomness = Randomness::new();
    let mut new_keys = Vec::new();
    for id in &needs_key {
        if !keys.contains_key(id) {
            let key: [u8; 32] = randomness.take()?;
            keys.insert(*id, key.to_vec());
            new_keys.push([(*id).into(), key.to_vec().into()]);
        }
    }
    let created_at = crate::time::now();
    let mut new_keys = new_keys.into_iter().peekable();
    while new_keys.peek().is_some() {
        let chunk: Vec<_> = new_keys.by_ref().take(CHUNK).collect();
        txn.execute_raw(crate::db::insert_statement(
            txn.get_database_backend(),
            "person_key",
            [("created_at", created_at.into())],
            ["person_id", "key"],
            chunk.into_iter(),
        ))
        .await?;
    }
    let mut sealer = Sealer::new(randomness);
    let mut sealed = Vec::with_capacity(subjects.len());
    for s in subjects {
        // The person's cipher, made at their first personal value.
        let mut person_cipher = None;
        let mut changes = Vec::with_capacity(s.changes.len());
        for c in &s.changes {
            if !is_personal(&c.field) {
                changes.push(Cow::Borrowed(c));
                continue;
            }
            let cipher = match &mut person_cipher {
                Some(cipher) => cipher,
                None => {
                    let key = keys
                        .get(&s.person_id)
                        .ok_or_else(|| anyhow::anyhow!("missing person key"))?;
                    person_cipher.insert(cipher(key)?)
                }
            };
            let mut seal = |v: &Value| {
                if v.is_null() {
                    Ok(Value::Null)
                } else {
                    sealer.seal(cipher, s.person_id, &c.field, v)
                }
            };
            let before = seal(&c.before)?;
            let after = seal(&c.after)?;
            changes.push(Cow::Owned(FieldChange::new(&c.field, before, after)));
        }
        sealed.push(changes);
    }
    Ok(sealed)
}

/// Opens sealed values in stored subjects. A value whose key is gone (the
/// person was erased) reads as `null` with `erased: true`.
pub(crate) async fn open<C: ConnectionTrait>(
    conn: &C,
    mut subjects: Vec<&mut Subject>,
) -> Result<()> {
    let ids: Vec<Uuid> = subjects
        .iter()
        .filter(|s| {
            s.changes
                .iter()
                .any(|c| sealed_payload(&c.before).is_some() || sealed_payload(&c.after).is_some())
        })
        .map(|s| s.person_id)
        .collect();
    let keys = load_keys(conn, &ids).await?;
    for s in subjects.iter_mut() {
        let s = &mut **s;
        let cipher = keys.get(&s.person_id).map(|k| cipher(k)).transpose()?;
        for c in &mut s.changes {
            for value in [&mut c.before, &mut c.after] {
                let Some(payload) = sealed_payload(value) else {
                    continue;
                };
                match &cipher {
                    Some(cipher) => *value = open_value(cipher, s.person_id, &c.field, payload)?,
                    None => {
                        *value = Value::Null;
                        c.erased = true;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Destroys a person's key: their sealed audit values can never be read again.
pub(crate) async fn shred<C: ConnectionTrait>(txn: &C, person_id: Uuid) -> Result<()> {
    person_key::Entity::delete_by_id(person_id)
        .exec(txn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_person_and_field() {
        let mut randomness = Randomness::new();
        let key: [u8; 32] = randomness.take().unwrap();
        let c = cipher(&key).unwrap();
        let id = Uuid::now_v7();
        let mut sealer = Sealer::new(randomness);
        let sealed = sealer
            .seal(&c, id, "email", &json!("ada@example.com"))
            .unwrap();
        assert!(!sealed.to_string().contains("ada"));
        let payload = sealed_payload(&sealed).unwrap();
        assert_eq!(
            open_value(&c, id, "email", payload).unwrap(),
            json!("ada@example.com")
        );
        assert!(open_value(&c, id, "phone", payload).is_err());
        assert!(open_value(&c, Uuid::now_v7(), "email", payload).is_err());
    }

    #[test]
    fn randomness_hands_out_each_byte_once_across_blocks() {
        let mut randomness = Randomness::new();
        // 12-byte nonces do not divide a block: this draws blocks of 1, 2,
        // 4, 8, 16, 32 and 64 KiB, then more of 64 KiB.
        let nonces: Vec<[u8; 12]> = (0..(127 + 64) * RANDOM_BLOCK / 12)
            .map(|_| randomness.take().unwrap())
            .collect();
        let distinct: std::collections::HashSet<_> = nonces.iter().collect();
        assert_eq!(distinct.len(), nonces.len());
        assert_eq!(randomness.block.len(), MAX_RANDOM_BLOCK);
        assert!(randomness.block[..randomness.used].iter().all(|b| *b == 0));
    }
}
