//! The project's benchmarks (criterion), under `benches/`. Run them with:
//!
//! ```text
//! cargo bench -p nursery-benches
//! ```
//!
//! This library is empty; it exists so the benchmarks have a crate to live in.
#![forbid(unsafe_code)]
