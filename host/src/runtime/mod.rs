//! The plugin runtime: [`engine`] (wasmtime engine, epochs, compile cache), [`state`] (per-run
//! store data and sandbox limits), [`calls`] (the one table of host calls), [`host_call`] (the
//! one path every capability call takes),
//! [`report`] (where logs, progress, notices and the call transcript go), [`instance`]
//! (instantiate a plugin and call its exports), [`interrupt`] (Ctrl-C at a call boundary).

pub mod calls;
pub mod engine;
pub mod host_call;
pub mod instance;
pub mod interrupt;
pub mod report;
pub mod state;
