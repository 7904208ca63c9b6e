//! `nursery`: supervised connections, shown and used.
//!
//! - `nursery demo` starts an embedded WebSocket server on 127.0.0.1, runs many supervised
//!   clients streaming messages through it, injects faults (server closes, resets, half-open
//!   peers, an external trigger with a slow close), and ends with a table: losses by reason,
//!   the time from each fault to the caller's typed error, cleanups run, tasks left alive.
//! - `nursery watch <ws-url>` supervises a real endpoint with reconnects and prints its events;
//!   Ctrl-C shuts down gracefully (the close handshake runs).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod cli;
mod client;
mod demo;
mod faults;
mod report;
mod server;
mod stats;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("nursery: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Demo(options) => runtime.block_on(demo::run(options)),
        Command::Watch(options) => runtime.block_on(watch::run(options)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nursery: {e}");
            ExitCode::FAILURE
        }
    }
}
