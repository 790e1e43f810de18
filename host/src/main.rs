//! The `opshost` binary: see [`opshost::cli`].

fn main() {
    // SAFETY: first thing in main, before any other thread starts.
    unsafe { opshost::capabilities::sql::mysql::cap_buffer_pool() };
    std::process::exit(opshost::cli::main());
}
