use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Message;

/// The outbound half of a WebSocket connection's accounting: the messages handed to the socket
/// (the most recent, within the in-flight window) and the messages refused because the
/// connection was already down. The driver records each message as it hands it over; the
/// queue of messages not yet handed over is the connection's outbound channel itself.
#[derive(Debug)]
pub(crate) struct Ledger {
    pub(crate) in_flight: VecDeque<Message>,
    in_flight_bytes: usize,
    window: usize,
    pub(crate) written: u64,
    pub(crate) refused: Vec<Message>,
    /// Unsent messages of a previous connection, to be written before any new one.
    pub(crate) replay: VecDeque<Message>,
    pub(crate) taken: bool,
}

impl Ledger {
    pub(crate) fn new(window: usize) -> Self {
        Ledger {
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            window,
            written: 0,
            refused: Vec::new(),
            replay: VecDeque::new(),
            taken: false,
        }
    }

    /// `message` is being handed to the socket: from now on it is in flight, never unsent.
    pub(crate) fn handed(&mut self, message: &Message) {
        self.written += 1;
        self.in_flight_bytes += message.len();
        // A clone shares the payload (reference-counted bytes).
        self.in_flight.push_back(message.clone());
        while self.in_flight_bytes > self.window && self.in_flight.len() > 1 {
            if let Some(old) = self.in_flight.pop_front() {
                self.in_flight_bytes -= old.len();
            }
        }
    }

    /// A `send` on a connection already down: unsent, until the accounting is taken.
    pub(crate) fn refused(&mut self, message: Message) {
        if !self.taken {
            self.refused.push(message);
        }
    }
}
