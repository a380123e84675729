//! The hash chain: `hash = SHA-256(previousHash ‖ canonical encoding)`.
//!
//! The canonical encoding (version 1) covers every stored column of the
//! event and of each person row, as stored: each value is written as its
//! byte length (u64, big-endian) and its UTF-8 bytes; optional values are
//! preceded by a 0 (absent) or 1 (present) byte; person rows are in
//! ascending person-id order. Because stored values are hashed, a later
//! change in how values are stored (encrypted, say) keeps these rules.

use chrono::SecondsFormat;
use entity::{audit_event, audit_event_person};
use sha2::{Digest, Sha256};

/// The hash the first event chains from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical encoding this build writes.
pub const ENCODING_VERSION: i32 = 1;

struct Encoder(Sha256);

impl Encoder {
    fn put(&mut self, value: &str) {
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value.as_bytes());
    }

    fn put_opt(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update([0u8]),
            Some(v) => {
                self.0.update([1u8]);
                self.put(v);
            }
        }
    }
}

/// The hash of `event` (its own `hash` column is ignored) chained from its
/// `previous_hash`, over `subjects` sorted by person id.
pub fn event_hash(event: &audit_event::Model, subjects: &[audit_event_person::Model]) -> String {
    let mut e = Encoder(Sha256::new());
    e.0.update(event.previous_hash.as_bytes());
    e.put("consentry-audit");
    e.put(&event.encoding_version.to_string());
    e.put(&event.id.to_string());
    e.put(&event.sequence.to_string());
    e.put(
        &event
            .occurred_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    e.put(&event.actor);
    e.put(&event.actor_roles);
    e.put(&event.action);
    e.put(&event.outcome);
    e.put_opt(event.reason.as_deref());
    e.put_opt(event.request_id.as_deref());
    e.put_opt(event.details.as_deref());
    e.put(&subjects.len().to_string());
    for s in subjects {
        e.put(&s.person_id.to_string());
        e.put(&s.changes);
    }
    hex::encode(e.0.finalize())
}
