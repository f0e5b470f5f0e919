//! Project tasks: `cargo xtask <task>`.
fn main() {
    eprintln!("no tasks yet");
    std::process::exit(2);
}
