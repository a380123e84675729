//! Who is calling and what they may do: bearer-token verification, roles and
//! the permission matrix of DESIGN §2. Knows nothing of HTTP or GraphQL.

mod jwks;
mod jwt;
mod roles;

pub use jwks::{JwksLocation, JwksSource};
pub use jwt::{JwtKey, JwtSettings, JwtVerifier, PublicKey, RolesClaim, issue_token};
pub use roles::{Actor, Permission, Role};

/// One request's caller: the verified actor and the request id that ties
/// audit events and log lines to the request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub actor: Actor,
    pub request_id: String,
}

impl Caller {
    /// A caller with a fresh request id.
    pub fn new(actor: Actor) -> Self {
        Caller {
            actor,
            request_id: uuid::Uuid::now_v7().to_string(),
        }
    }
}
