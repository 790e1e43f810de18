//! Capabilities: one module per WIT interface, each with its trait, backends and WIT glue.
//!
//! [`Capabilities`] is what a run's plugin can reach. Backends never see grants, the transcript
//! or injected faults: every call passes through [`crate::runtime::host_call`] first.

pub mod console;
pub mod docker;
pub mod services;
pub mod sql;

use std::sync::Arc;

pub use crate::bindings::Error;

/// What a plugin run talks to. Real and fake backends are interchangeable behind these traits.
#[derive(Clone)]
pub struct Capabilities {
    pub docker: Arc<dyn docker::Docker>,
    pub sql: Arc<dyn sql::Sql>,
    pub console: Arc<dyn console::Console>,
    pub services: Arc<dyn services::Services>,
}

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
