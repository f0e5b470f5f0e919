//! Kernel tests (filled in later).
