//! The WIT contract's typed error, and short constructors for backends. A leaf: every
//! capability's files import it, it imports nothing of theirs.

pub use crate::bindings::Error;

/// `Error::Failed`, for backends.
pub fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}
pub fn not_found(msg: impl Into<String>) -> Error {
    Error::NotFound(msg.into())
}
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}
