//! Encodes one reference workload many times, for instruction counts with callgrind (timings
//! on a shared machine are noisy; instruction counts are not):
//!
//! ```text
//! cargo build --profile bench -p otlp-metrics-encode --example encode_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/encode_loop W2 chunks 100
//! ```
//! Run it with two iteration counts and divide the difference in instructions by the extra
//! iterations and the workload's points: the setup (building the workload with the SDK)
//! cancels out.

use std::convert::Infallible;
use std::hint::black_box;

use otlp_metrics_encode::workloads;
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: encode_loop W1|W2|W2e|W3 request|chunks ITERATIONS";
    let [_, name, mode, iterations] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iterations: usize = iterations.parse().expect(usage);
    let w = workloads::all()
        .into_iter()
        .find(|w| w.name == name.as_str())
        .expect(usage);
    let mut encoder = MetricsEncoder::new();
    for _ in 0..iterations {
        match mode.as_str() {
            "request" => {
                black_box(encoder.encode_request(black_box(&w.metrics)));
            }
            "chunks" => {
                let summary = encoder
                    .encode_chunks(black_box(&w.metrics), DEFAULT_MAX_REQUEST_BYTES, |chunk| {
                        black_box(chunk);
                        Ok::<(), Infallible>(())
                    })
                    .unwrap_or_else(|never| match never {});
                black_box(summary);
            }
            _ => panic!("{usage}"),
        }
    }
    println!("{} points x {iterations} ({mode})", w.points);
}
