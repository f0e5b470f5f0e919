//! Decode `user_events:otlp_metrics` records back into OTLP.
#![forbid(unsafe_code)]
