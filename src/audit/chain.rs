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

/// Computes one event's hash, its person rows fed one at a time (in
/// ascending person-id order), so an event naming many people is hashed
/// without holding its rows.
pub struct EventHasher(Encoder);

impl EventHasher {
    /// Starts the hash of `event` at `sequence`, chained from
    /// `previous_hash`, naming `subjects` people (its own sealing columns
    /// are ignored).
    pub fn new(
        event: &audit_event::Model,
        sequence: i64,
        previous_hash: &str,
        subjects: usize,
    ) -> Self {
        let mut e = Encoder(Sha256::new());
        e.0.update(previous_hash.as_bytes());
        e.put("consentry-audit");
        e.put(&event.encoding_version.to_string());
        e.put(&event.id.to_string());
        e.put(&sequence.to_string());
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
        e.put(&subjects.to_string());
        EventHasher(e)
    }

    /// Adds the next person row.
    pub fn person(&mut self, row: &audit_event_person::Model) {
        self.0.put(&row.person_id.to_string());
        self.0.put(&row.changes);
    }

    /// The hash, hex-encoded.
    pub fn finish(self) -> String {
        hex::encode(self.0.0.finalize())
    }
}

/// The hash of `event` at `sequence` chained from `previous_hash`, over
/// `subjects` sorted by person id.
pub fn event_hash(
    event: &audit_event::Model,
    sequence: i64,
    previous_hash: &str,
    subjects: &[audit_event_person::Model],
) -> String {
    let mut h = EventHasher::new(event, sequence, previous_hash, subjects.len());
    for s in subjects {
        h.person(s);
    }
    h.finish()
}
