//! SeaORM entities for consentry, one module per table.
//!
//! These are storage rows only: the server maps them to its own domain and
//! GraphQL types, so internal columns (such as `email_normalized`) never reach
//! the API.

pub mod audit_chain_head;
pub mod audit_event;
pub mod audit_event_person;
pub mod crm_outbox;
pub mod crm_sync_state;
pub mod email_message;
pub mod person;
pub mod person_key;
pub mod subscription_event;
pub mod suppressed_email;
