//! Value types that carry consentry's rules: they can only be built valid,
//! so code holding one need not check it again.

/// Gives a fieldless enum its stored (and API) names: `ALL`, `as_str`, `parse`.
macro_rules! stored_enum {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The stored and API name, e.g. `CONSENT`.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            /// Parses a stored or API name.
            pub fn parse(s: &str) -> Option<$ty> {
                match s { $($name => Some($ty::$variant),)* _ => None }
            }
        }
    };
}
pub(crate) use stored_enum;

mod compliance;
mod email;
mod filter;
mod person;
mod text;

pub use compliance::{Authorization, AuthorizationType, ComplianceCard, Source, SourceType};
pub use email::Email;
pub use filter::PeopleFilter;
pub use person::{Contact, Person, Subscription};
pub use text::{MAX_TEXT_CHARS, Text};
