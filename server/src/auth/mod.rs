//! Authentication and authorisation: JWT bearer tokens and roles.
//!
//! Tokens are HS256 with the configured (or generated) secret, and optionally
//! RS256/EdDSA with a configured public key. `alg: none` and any algorithm not
//! configured are refused by construction: the accepted algorithms are listed
//! explicitly per key.

mod keys;
mod role;
pub mod secret;

pub use keys::{AuthError, Claims, JwtKeys};
pub use role::{Permission, Role};
