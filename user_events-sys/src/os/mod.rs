//! System calls, chosen per platform. The Linux module holds the real calls; elsewhere every
//! call reports "unsupported", so crates built on this one still compile.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

// Compiled (and unit-tested) on Linux too, so that it cannot rot unnoticed.
#[cfg(any(not(target_os = "linux"), test))]
pub(crate) mod unsupported;
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::*;
