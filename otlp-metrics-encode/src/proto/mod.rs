//! Prost types for the OTLP metrics export request, generated from the vendored schema in
//! `proto/` (see `proto/README.md`). Module paths mirror the protobuf packages below
//! `opentelemetry.proto`.
//!
//! These types are for decoding and tests; the encoder writes protobuf directly and never builds
//! them. Do not edit the included files: regenerate them with
//! `UPDATE_GENERATED=1 cargo test -p otlp-metrics-encode --test generated`.

/// `opentelemetry.proto.collector.*`: the export service messages.
pub mod collector {
    /// `opentelemetry.proto.collector.metrics`.
    pub mod metrics {
        /// `opentelemetry.proto.collector.metrics.v1`: `ExportMetricsServiceRequest` and its response.
        #[allow(missing_docs, clippy::all, rustdoc::all)]
        pub mod v1 {
            include!("opentelemetry.proto.collector.metrics.v1.rs");
        }
    }
}

/// `opentelemetry.proto.common`.
pub mod common {
    /// `opentelemetry.proto.common.v1`: `AnyValue`, `KeyValue`, `InstrumentationScope`.
    #[allow(missing_docs, clippy::all, rustdoc::all)]
    pub mod v1 {
        include!("opentelemetry.proto.common.v1.rs");
    }
}

/// `opentelemetry.proto.metrics`.
pub mod metrics {
    /// `opentelemetry.proto.metrics.v1`: `ResourceMetrics`, `Metric`, the data point types.
    #[allow(missing_docs, clippy::all, rustdoc::all)]
    pub mod v1 {
        include!("opentelemetry.proto.metrics.v1.rs");
    }
}

/// `opentelemetry.proto.resource`.
pub mod resource {
    /// `opentelemetry.proto.resource.v1`: `Resource`.
    #[allow(missing_docs, clippy::all, rustdoc::all)]
    pub mod v1 {
        include!("opentelemetry.proto.resource.v1.rs");
    }
}
