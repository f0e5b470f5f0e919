//! Checks that the prost types checked in under `src/proto/` are exactly what `prost-build`
//! generates today from the vendored `.proto` files (compiled by `protox`, so no system `protoc`).
//!
//! To update the checked-in files after changing the schema or the generator:
//! `UPDATE_GENERATED=1 cargo test -p otlp-metrics-encode --test generated`

use std::fs;
use std::path::{Path, PathBuf};

/// The generated files, one per protobuf package, in the order `src/proto/mod.rs` includes them.
const GENERATED_FILES: [&str; 4] = [
    "opentelemetry.proto.collector.metrics.v1.rs",
    "opentelemetry.proto.common.v1.rs",
    "opentelemetry.proto.metrics.v1.rs",
    "opentelemetry.proto.resource.v1.rs",
];

const UPDATE_HINT: &str = "UPDATE_GENERATED=1 cargo test -p otlp-metrics-encode --test generated";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs protox + prost-build into `out_dir`.
fn generate_into(out_dir: &Path) {
    let proto_dir = crate_dir().join("proto");
    let descriptors = protox::compile(
        ["opentelemetry/proto/collector/metrics/v1/metrics_service.proto"],
        [&proto_dir],
    )
    .expect("the vendored .proto files compile with protox");
    prost_build::Config::new()
        .out_dir(out_dir)
        .compile_fds(descriptors)
        .expect("prost-build generates code from the descriptor set");
}

#[test]
fn checked_in_prost_types_match_the_vendored_schema() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "otlp-metrics-encode-generated-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir).expect("create temp dir");
    generate_into(&out_dir);

    let mut produced: Vec<String> = fs::read_dir(&out_dir)
        .expect("read temp dir")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    produced.sort();
    assert_eq!(
        produced, GENERATED_FILES,
        "prost-build produced a different set of files; update GENERATED_FILES and src/proto/mod.rs"
    );

    let checked_in_dir = crate_dir().join("src").join("proto");
    let update = std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for name in GENERATED_FILES {
        let fresh = fs::read_to_string(out_dir.join(name)).expect("read generated file");
        let checked_in_path = checked_in_dir.join(name);
        let checked_in = fs::read_to_string(&checked_in_path).unwrap_or_default();
        if fresh != checked_in {
            if update {
                fs::write(&checked_in_path, &fresh).expect("write generated file");
            } else {
                stale.push(name);
            }
        }
    }
    let _ = fs::remove_dir_all(&out_dir);
    assert!(
        stale.is_empty(),
        "generated prost types are out of date: {stale:?} differ from src/proto/. \
         Update them with: {UPDATE_HINT}"
    );
}
