//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod from_json;
pub mod http;
pub mod perf_file;
pub mod requests;
