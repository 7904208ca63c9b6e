//! What `nursery watch` sends: the `--send` messages on every connect, and the lines of stdin,
//! read on a thread of its own.
//!
//! The thread is a plain OS thread, not a tokio blocking task: a read of stdin cannot be
//! cancelled, and the runtime's shutdown waits for its blocking tasks, so a user who never
//! types would keep the process alive after Ctrl-C. An OS thread blocked in `read` simply
//! ends with the process.

use std::io::BufRead;
use std::sync::Mutex;

use nursery_net::tungstenite::Message;
use tokio::sync::mpsc;

/// How many stdin lines may wait for a connection before the reading thread waits too.
const QUEUE: usize = 1024;

/// The messages waiting to be sent, shared by the bodies of successive connections.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Sent first on every connect, in order.
    pub(super) on_connect: Vec<String>,
    /// Lines from stdin; `None` once stdin has ended (or is not read).
    lines: tokio::sync::Mutex<Option<mpsc::Receiver<Message>>>,
    /// A line taken from the queue whose `send` has not returned `Ok`: the body may have been
    /// force-exited during the send, so the next connection sends it again (it may then
    /// arrive twice; a line is never silently lost).
    unconfirmed: Mutex<Option<Message>>,
}

impl Outbox {
    /// An outbox with `on_connect` messages, reading stdin if `read_stdin`.
    pub(super) fn new(on_connect: Vec<String>, read_stdin: bool) -> Self {
        let lines = read_stdin.then(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("nursery watch: stdin".into())
                .spawn(move || read_lines(&tx));
            // Without the thread, nothing is read: the queue reports the end of input.
            spawned.is_ok().then_some(rx)
        });
        Outbox {
            on_connect,
            lines: tokio::sync::Mutex::new(lines.flatten()),
            unconfirmed: Mutex::new(None),
        }
    }

    /// The next message to send: the unconfirmed one first, then the next line.
    ///
    /// Cancel safe: a line is taken from the queue only when it is returned, and it is
    /// recorded as unconfirmed at once.
    pub(super) async fn next(&self) -> Next {
        if let Some(message) = self.unconfirmed() {
            return Next::Send(message);
        }
        let mut lines = self.lines.lock().await;
        let Some(queue) = lines.as_mut() else {
            return Next::Ended;
        };
        match queue.recv().await {
            Some(message) => {
                *self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
                Next::Send(message)
            }
            None => {
                *lines = None;
                Next::JustEnded
            }
        }
    }

    /// A message left unconfirmed by a lost connection, if any (it stays recorded until
    /// [`confirm`](Self::confirm)).
    pub(super) fn unconfirmed(&self) -> Option<Message> {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The message returned last by [`next`](Self::next) was sent.
    pub(super) fn confirm(&self) {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// What [`Outbox::next`] found.
#[derive(Debug)]
pub(super) enum Next {
    /// A message to send, then [`Outbox::confirm`].
    Send(Message),
    /// Stdin has just ended: nothing more will come.
    JustEnded,
    /// Stdin ended earlier (or is not read).
    Ended,
}

/// Reads stdin line by line into `tx` until the end of input or until nobody receives.
fn read_lines(tx: &mpsc::Sender<Message>) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("nursery: cannot read stdin any more: {e}");
                return;
            }
        }
        if tx.blocking_send(message_of(&line)).is_err() {
            return;
        }
    }
}

/// One line of stdin as a message: text without its line ending, or binary if not UTF-8.
fn message_of(line: &[u8]) -> Message {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => Message::text(text),
        Err(_) => Message::binary(line.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_ending_and_keep_their_bytes() {
        assert_eq!(message_of(b"hello\n"), Message::text("hello"));
        assert_eq!(message_of(b"crlf\r\n"), Message::text("crlf"));
        assert_eq!(message_of(b"last"), Message::text("last"));
        assert_eq!(message_of(b"\n"), Message::text(""));
        assert_eq!(message_of(b"\xff\xfe\n"), Message::binary(vec![0xff, 0xfe]));
    }
}
