//! A load shaped like `cargo xtask demo`'s app (`ue-metrics-exporter/examples/basic.rs`) for
//! the throughput test: per tick, requests over the demo's 40 attribute sets (5 routes x 2
//! methods x 4 status codes) counted, timed in a histogram and sized in a counter, as the demo
//! does, plus a round of the [`known`](crate::known) instruments (every instrument kind). One
//! export of a tick is about the demo's one export per second: some 150 points.

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

use crate::known::KnownInstruments;

/// The demo app's routes.
const ROUTES: [&str; 5] = ["/", "/login", "/api/items", "/api/orders", "/health"];
/// The demo app's methods.
const METHODS: [&str; 2] = ["GET", "POST"];
/// The demo app's status codes.
const STATUSES: [i64; 4] = [200, 201, 404, 500];

/// Attribute sets per request instrument (as in the demo app).
pub const SETS: usize = ROUTES.len() * METHODS.len() * STATUSES.len();

/// The instruments of the load.
pub struct DemoShapedLoad {
    known: KnownInstruments,
    requests: Counter<u64>,
    duration: Histogram<f64>,
    body_size: Counter<f64>,
    sets: Vec<[KeyValue; 3]>,
}

impl DemoShapedLoad {
    /// Creates the instruments in `meter`.
    pub fn register(meter: &Meter) -> DemoShapedLoad {
        let mut sets = Vec::with_capacity(SETS);
        for route in ROUTES {
            for method in METHODS {
                for status in STATUSES {
                    sets.push([
                        KeyValue::new("http.route", route),
                        KeyValue::new("http.request.method", method),
                        KeyValue::new("http.response.status_code", status),
                    ]);
                }
            }
        }
        DemoShapedLoad {
            known: KnownInstruments::register(meter),
            requests: meter.u64_counter("http.server.requests").build(),
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .build(),
            body_size: meter
                .f64_counter("http.server.response.body.size")
                .with_unit("By")
                .build(),
            sets,
        }
    }

    /// Records tick `tick` (1, 2, ...): one request in every attribute set, and a round of the
    /// known instruments; so every export after a tick carries every series.
    pub fn record_tick(&self, tick: u64) {
        self.known.record_round(tick);
        for (i, attributes) in self.sets.iter().enumerate() {
            let spread = (tick + i as u64) % 100;
            self.requests.add(1, attributes);
            self.duration.record(spread as f64 / 50.0, attributes);
            self.body_size.add((100 * spread) as f64, attributes);
        }
    }
}
