//! Helpers for driving the built `nursery` binary against a WebSocket server written here
//! with tokio-tungstenite: start the binary, read its output line by line, signal it, and
//! record what the server saw.
#![allow(dead_code)] // each test file uses a part

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use nursery_net::tungstenite::Message;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio_tungstenite::WebSocketStream;

/// The hang guard of every wait: generous, so a loaded machine does not fail a test; a test
/// that reaches it has found a hang.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// A listener on 127.0.0.1 and its `ws://` URL.
pub(crate) async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// Accepts one WebSocket connection.
pub(crate) async fn accept(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (socket, _) = tokio::time::timeout(HANG, listener.accept())
        .await
        .expect("the watcher connects")
        .unwrap();
    tokio_tungstenite::accept_async(socket).await.unwrap()
}

/// What the server saw on one connection.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The data messages, in order.
    pub(crate) messages: Vec<Message>,
    /// The close code of the client's close frame, if one came.
    pub(crate) close_code: Option<u16>,
}

/// Reads until the client's close frame or the end of the stream, recording what came.
pub(crate) async fn record(ws: &mut WebSocketStream<TcpStream>) -> Seen {
    let mut seen = Seen::default();
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Close(frame) => {
                seen.close_code = frame.map(|f| u16::from(f.code));
            }
            m @ (Message::Text(_) | Message::Binary(_)) => seen.messages.push(m),
            _ => {}
        }
    }
    seen
}

/// Reads data messages until `n` have come.
pub(crate) async fn take(ws: &mut WebSocketStream<TcpStream>, n: usize) -> Vec<Message> {
    let mut messages = Vec::new();
    let read = async {
        while messages.len() < n {
            match ws.next().await {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => messages.push(m),
                Some(Ok(_)) => {}
                other => panic!("the stream ended before {n} messages: {other:?}"),
            }
        }
    };
    tokio::time::timeout(HANG, read)
        .await
        .unwrap_or_else(|_| panic!("{n} messages expected"));
    messages
}

/// The running binary and its stdout, read line by line (and kept, for failure messages).
pub(crate) struct Watch {
    pub(crate) child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub(crate) seen: Vec<String>,
}

impl Watch {
    /// Starts `nursery` with `args`, stdout and stderr piped, stdin piped or null.
    pub(crate) fn start(args: &[&str], stdin: bool) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nursery"))
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run nursery");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Watch {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line of stdout containing `text`, and returns it.
    pub(crate) async fn line_with(&mut self, text: &str) -> String {
        let found = tokio::time::timeout(HANG, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.seen.push(line.clone());
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no line with {text:?} in:\n{}", self.seen.join("\n")),
        }
    }

    /// Sends `signal` (`TERM`, `INT`) with `kill`.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the exit; returns the status code and all of stdout and stderr.
    pub(crate) async fn finish(mut self) -> (Option<i32>, String, String) {
        let status = tokio::time::timeout(HANG, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("nursery did not exit:\n{}", self.seen.join("\n")))
            .unwrap();
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = err.read_to_string(&mut stderr).await;
        }
        (status.code(), self.seen.join("\n"), stderr)
    }
}
