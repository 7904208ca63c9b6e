//! What every criterion bench shares: the two runtimes, built the same way for each peer.

/// The runtimes every workload runs on: `(name, runtime)`. The multi-thread runtime has two
/// workers (this is what the machines running the report have); the bench thread only drives
/// `block_on`.
pub(crate) fn runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("current-thread runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("multi-thread runtime");
    vec![("current_thread", current), ("multi_thread", multi)]
}

/// The error type of every nursery child in the benches.
pub(crate) type BenchError = std::io::Error;
