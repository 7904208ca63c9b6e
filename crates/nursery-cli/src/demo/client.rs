//! One supervised client of the demo: connect, stream, read the echoes, reconnect after each
//! loss, and count what happened. Reads the shared state; the injector and the server never
//! call into it.

use std::sync::Arc;
use std::time::Duration;

use nursery_net::{Backoff, Event, Heartbeat, Reconnect, Supervisor, WsConfig, WsConnection};

use super::error::DemoError;
use super::state::Demo;
use super::stats::{Loss, Stats};

/// The pause between two messages of a client's stream.
const MESSAGE_INTERVAL: Duration = Duration::from_millis(20);

/// One supervised client: connects, streams messages and reads their echoes, and after each
/// loss reconnects (backoff with seeded jitter). Runs until cancelled.
pub(super) async fn run(id: u32, demo: Arc<Demo>) -> Result<(), DemoError> {
    let options = &demo.options;
    let heartbeat = Heartbeat::new(options.heartbeat_interval, options.heartbeat_timeout);
    let config = WsConfig::new()
        .heartbeat(heartbeat)
        .max_message_size(64 * 1024);
    let backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500)).seed(
        options
            .seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(u64::from(id)),
    );
    let observer = {
        let demo = demo.clone();
        move |event: &Event| on_event(&demo, id, event)
    };
    let reconnect = Reconnect::new()
        .backoff(backoff)
        .supervisor(Supervisor::new().close_timeout(options.close_timeout))
        .on_event(observer);
    let url = demo.url.clone();
    reconnect
        .run(
            || {
                let (url, config) = (url.clone(), config.clone());
                async move {
                    WsConnection::connect(url, config)
                        .await
                        .map_err(DemoError::Connect)
                }
            },
            |conn| stream(id, conn, demo.clone()),
        )
        .await
}

/// The body: a stream of messages, each echoed by the server. It never ends by itself.
async fn stream(id: u32, conn: WsConnection, demo: Arc<Demo>) -> Result<(), DemoError> {
    let slot = demo.client(id);
    slot.set_signal(nursery_net::Connection::loss_signal(&conn).clone());
    conn.send_text(format!("hello {id}")).await?;
    for seq in 1u64.. {
        conn.send_text(format!("{id}:{seq}")).await?;
        conn.recv().await?; // the echo
        Stats::add(&demo.stats.echoed);
        tokio::time::sleep(MESSAGE_INTERVAL).await;
    }
    unreachable!("the stream ends only by force-exit")
}

fn on_event(demo: &Demo, id: u32, event: &Event) {
    let stats = &demo.stats;
    match event {
        Event::Connected { .. } => Stats::add(&stats.connected),
        Event::ConnectFailed { .. } => Stats::add(&stats.connect_failures),
        Event::Retrying { .. } => Stats::add(&stats.retries),
        Event::Closed { timed_out, .. } => {
            Stats::add(&stats.closes);
            if *timed_out {
                Stats::add(&stats.close_timeouts);
            }
        }
        // The typed error has reached the caller (the reconnect loop): the fault's latency.
        Event::Lost { reason, .. } => {
            let fault = demo.client(id).take_fault();
            stats.record_loss(Loss {
                fault: fault.map(|(kind, _)| kind),
                reason: reason.label(),
                latency: fault.map(|(_, at)| at.elapsed()).unwrap_or_default(),
            });
        }
        _ => {}
    }
}
