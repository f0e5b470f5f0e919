//! Cross-check with an independent decoder: `protoc --decode` (Debian `protobuf-compiler`)
//! parses our requests and chunks against the vendored schema. Skips with a message when
//! `protoc` is not installed (`.ci/install-deps` installs it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use otlp_metrics_encode::check::{check_chunks, decode, flatten, recipe_from_bytes, roundtrip};
use otlp_metrics_encode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics_encode::workloads::{self, collect};
use otlp_metrics_encode::MetricsEncoder;

const REQUEST: &str = "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest";

fn protoc() -> Option<PathBuf> {
    let path = std::env::var_os("PROTOC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/protoc"));
    path.exists().then_some(path)
}

/// protoc's text rendering of `bytes`, or the error it printed.
fn protoc_decode(protoc: &Path, bytes: &[u8]) -> Result<String, String> {
    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let mut child = Command::new(protoc)
        .arg(format!("--decode={REQUEST}"))
        .arg("-I")
        .arg(&proto_dir)
        .arg("opentelemetry/proto/collector/metrics/v1/metrics_service.proto")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", protoc.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    writer
        .join()
        .expect("writer thread")
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Checks protoc's view of one request: it parses, has no unknown fields (protoc prints those
/// as bare field numbers) and holds `points` data points.
fn assert_protoc_agrees(protoc: &Path, bytes: &[u8], points: usize, what: &str) -> String {
    let text = protoc_decode(protoc, bytes).unwrap_or_else(|e| panic!("{what}: protoc: {e}"));
    for line in text.lines() {
        let first = line.trim_start().chars().next();
        assert!(
            !first.is_some_and(|c| c.is_ascii_digit()),
            "{what}: protoc saw an unknown field: {line}"
        );
    }
    assert_eq!(
        text.matches("data_points {").count(),
        points,
        "{what}: point count"
    );
    text
}

#[test]
fn protoc_decodes_our_requests_and_chunks() {
    let Some(protoc) = protoc() else {
        eprintln!("SKIP protoc cross-check: /usr/bin/protoc not found (apt-get install protobuf-compiler)");
        return;
    };
    let mut encoder = MetricsEncoder::new();
    for w in [workloads::w1(), workloads::w2(), workloads::w2e()] {
        let request = encoder.encode_request(&w.metrics).to_vec();
        let text = assert_protoc_agrees(&protoc, &request, w.points, w.name);
        assert!(
            text.contains("string_value: \"checkout\""),
            "{}: resource attribute",
            w.name
        );
        assert!(
            text.contains("AGGREGATION_TEMPORALITY_CUMULATIVE"),
            "{}: temporality enum",
            w.name
        );
        assert!(text.contains("is_monotonic: true"), "{}", w.name);

        let check = check_chunks(&mut encoder, &w.metrics, 1500);
        for (i, chunk) in check.chunks.iter().enumerate() {
            let points = flatten(roundtrip_bytes(chunk))
                .iter()
                .filter(|item| item.point.is_some())
                .count();
            let text =
                assert_protoc_agrees(&protoc, chunk, points, &format!("{} chunk {i}", w.name));
            assert!(
                text.contains("resource {"),
                "{} chunk {i} carries its resource",
                w.name
            );
            assert!(
                text.contains("scope {"),
                "{} chunk {i} carries its scope",
                w.name
            );
        }
    }
    // Random recipes: every value type (arrays included) and every kind, both temporalities.
    for seed in 0u8..24 {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect();
        let rm = collect(&recipe_from_bytes(&data));
        let points = flatten(roundtrip(&mut encoder, &rm))
            .iter()
            .filter(|item| item.point.is_some())
            .count();
        let request = encoder.encode_request(&rm).to_vec();
        assert_protoc_agrees(&protoc, &request, points, &format!("recipe {seed}"));
    }
}

fn roundtrip_bytes(bytes: &[u8]) -> ExportMetricsServiceRequest {
    decode(bytes)
}

#[test]
fn protoc_rejects_garbage_so_the_cross_check_can_fail() {
    let Some(protoc) = protoc() else {
        eprintln!("SKIP protoc cross-check: /usr/bin/protoc not found (apt-get install protobuf-compiler)");
        return;
    };
    // A length prefix pointing past the end of the input.
    assert!(protoc_decode(&protoc, &[0x0A, 0x7F, 0x01]).is_err());
}
