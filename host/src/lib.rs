//! opshost: upgrades and rolls back OceanBase ops products in Docker through sandboxed WASM plugins.
//!
//! Layout: [`bindings`] (the WIT contract), [`capabilities`] (one module per WIT interface: trait,
//! backends, glue), [`runtime`] (engine, store, host-call path, instances), [`fakehost`] (scenarios
//! for plugin authors), [`registry`] (plugin files), [`cli`].

pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod fakehost;
pub mod grants;
pub mod journal;
pub mod registry;
pub mod runs;
pub mod runtime;
pub mod text;
