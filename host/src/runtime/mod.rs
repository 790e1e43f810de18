//! The plugin runtime: [`engine`] (wasmtime engine, epochs, compile cache), [`state`] (per-run
//! store data and sandbox limits), [`calls`] (the one table of host calls), [`host_call`] (the
//! one path every capability call takes), [`record`] (what a call leaves behind, the faults a
//! scenario injects), [`instance`]
//! (instantiate a plugin and call its exports), [`interrupt`] (Ctrl-C at a call boundary).

pub mod calls;
pub mod engine;
pub mod host_call;
pub mod instance;
pub mod interrupt;
pub mod record;
pub mod state;
