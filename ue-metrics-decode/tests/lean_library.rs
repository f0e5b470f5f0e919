//! The decoder used as a library (`default-features = false`) depends on the prost types, the
//! perf.data reader and the kernel layer only: nothing of the CLI, HTTP or the OpenTelemetry SDK.

use std::process::Command;

/// Crates a collector embedding the library must not pull in (name prefixes).
const FORBIDDEN: [&str; 16] = [
    "opentelemetry",
    "opentelemetry_sdk",
    "futures",
    "signal-hook",
    "ureq",
    "hyper",
    "reqwest",
    "http",
    "httparse",
    "h2",
    "rustls",
    "native-tls",
    "curl",
    "attohttpc",
    "minreq",
    "tokio",
];

fn tree(args: &[&str]) -> Vec<String> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "ue-metrics-decode",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn forbidden(crates: &[String]) -> Vec<&String> {
    crates
        .iter()
        .filter(|name| {
            FORBIDDEN.iter().any(|bad| {
                *name == bad
                    || name.starts_with(&format!("{bad}-"))
                    || name.starts_with(&format!("{bad}_"))
            })
        })
        .collect()
}

#[test]
fn lean_library_dependency_tree() {
    let library = tree(&["--no-default-features"]);
    for needed in [
        "prost",
        "tracepoint_perf",
        "tracepoint_decode",
        "otlp-metrics-encode",
    ] {
        assert!(
            library.iter().any(|c| c == needed),
            "{needed} missing: {library:?}"
        );
    }
    assert_eq!(forbidden(&library), Vec::<&String>::new(), "{library:?}");
    // The check can see them: the CLI build does pull some in.
    let cli = tree(&[]);
    assert!(!forbidden(&cli).is_empty(), "{cli:?}");
}
