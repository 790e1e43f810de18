//! opshost: upgrades and rolls back OceanBase ops products in Docker through sandboxed WASM plugins.
//!
//! Layout: [`bindings`] (the WIT contract), [`capabilities`] (one module per WIT interface: trait,
//! config, backends, glue), [`runtime`] (engine, store, the table of host calls and the one path
//! they take, instances), [`journal`] (a run's calls, for resume), [`ops`] (what a site runs:
//! plan, upgrade, rollback, resume, runs, as a library), [`report`] (where a run's output goes),
//! [`fakehost`] (scenarios for plugin authors), [`registry`] (plugin files), [`cli`] (arguments
//! in, an operation called, its answer rendered). Lower layers never import higher ones:
//! `tests/import-circles.py` checks it.

pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod fakehost;
pub mod grants;
pub mod journal;
pub mod ops;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod text;
