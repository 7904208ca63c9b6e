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
mod demo;
mod watch;

use std::error::Error;
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
    let outcome: Result<(), Box<dyn Error>> = match cli.command {
        Command::Demo(options) => runtime.block_on(demo::run(options)).map_err(Into::into),
        Command::Watch(options) => return runtime.block_on(watch::run(options)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nursery: {}", chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources on one line, `outer: inner: innermost`, leaving out a source whose
/// text the line already contains (many errors repeat their source in their own message).
fn chain(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = e.source();
    }
    line
}
