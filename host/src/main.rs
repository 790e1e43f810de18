//! The `opshost` binary: see [`opshost::cli`].

fn main() {
    std::process::exit(opshost::cli::main());
}
