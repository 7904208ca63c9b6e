//! Three tonic services on loopback, A -> B -> C, each behind `ServerLayer`, each calling the
//! next through `ClientLayer`. Real clock and real sockets: the bounds are the ones the feature
//! promises (within 250 ms of a 200 ms budget), and hangs are guarded by generous timeouts.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nursery_tower::ClientService;
use nursery_tower::RequestCancel;
use support::chain::{call, client, ChainService, Event, Hop, Node};
use support::serve::{start, Server};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Code;

const MARGIN: Duration = Duration::from_millis(10);
const HANG_GUARD: Duration = Duration::from_secs(10);

struct Chain {
    servers: Vec<Server>,
    caller: ClientService<Channel>,
    events: mpsc::UnboundedReceiver<Event>,
}

/// C sleeps 10 s; B calls C; A calls B.
async fn chain() -> Chain {
    let (tx, events) = mpsc::unbounded_channel();
    let mut servers: Vec<Server> = Vec::new();
    let mut next = None;
    for name in ["C", "B", "A"] {
        let node = Node {
            name,
            next: next.take(),
            work: Duration::from_secs(10),
            events: tx.clone(),
        };
        let server = start(
            ChainService(Arc::new(node)),
            Duration::from_millis(100),
            |layer| layer,
            true,
        )
        .await;
        next = Some(client(server.addr, MARGIN));
        servers.push(server);
    }
    let a = servers.last().expect("A").addr;
    let caller = client(a, MARGIN);
    let mut chain = Chain {
        servers,
        caller,
        events,
    };
    chain.warm_up().await;
    chain
}

impl Chain {
    /// One call through the chain first, so the measured call does not pay for connecting: the
    /// timeout is written before a lazy channel connects, and the margin covers transit, not a
    /// handshake on a loaded machine.
    async fn warm_up(&mut self) {
        let _ = tokio_nursery::move_on_after(Duration::from_millis(100), async {
            call(self.caller.clone(), Hop::default()).await
        })
        .await;
        let (mut ended, mut cleaned) = (0, 0);
        tokio::time::timeout(HANG_GUARD, async {
            while ended < 3 || cleaned < 3 {
                match self.events.recv().await.expect("events") {
                    Event::Ended { .. } => ended += 1,
                    Event::Cleanup { .. } => cleaned += 1,
                    Event::Started { .. } => {}
                }
            }
        })
        .await
        .expect("warm-up call ended everywhere");
    }

    /// Waits until every service has reported its end, then stops the servers (which waits for
    /// every cleanup) and returns everything that happened.
    async fn finish(mut self) -> Vec<Event> {
        let mut seen = Vec::new();
        let ended = |seen: &Vec<Event>| {
            seen.iter()
                .filter(|e| matches!(e, Event::Ended { .. }))
                .count()
        };
        tokio::time::timeout(HANG_GUARD, async {
            while ended(&seen) < 3 {
                seen.push(self.events.recv().await.expect("events"));
            }
        })
        .await
        .expect("all three requests ended");
        for server in self.servers.drain(..) {
            tokio::time::timeout(HANG_GUARD, server.stop())
                .await
                .expect("server stopped");
        }
        while let Ok(event) = self.events.try_recv() {
            seen.push(event);
        }
        seen
    }
}

fn by_name<F: Fn(&Event) -> Option<(&'static str, T)>, T>(
    events: &[Event],
    pick: F,
) -> HashMap<&'static str, Vec<T>> {
    let mut out: HashMap<&'static str, Vec<T>> = HashMap::new();
    for (name, value) in events.iter().filter_map(pick) {
        out.entry(name).or_default().push(value);
    }
    out
}

fn cleanups_once(events: &[Event]) {
    let cleanups = by_name(events, |e| match e {
        Event::Cleanup { name } => Some((*name, ())),
        _ => None,
    });
    for name in ["A", "B", "C"] {
        assert_eq!(
            cleanups.get(name).map(Vec::len),
            Some(1),
            "{name}'s cleanup ran once: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200ms_budget_ends_the_whole_chain_with_deadline_exceeded() {
    let chain = chain().await;
    let caller = chain.caller.clone();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(200);
    let out = tokio_nursery::move_on_at(deadline + Duration::from_secs(1), async {
        // The caller's own budget: 200 ms, which A receives as its grpc-timeout.
        tokio_nursery::move_on_at(deadline, call(caller, Hop::default())).await
    })
    .await
    .expect("hang guard");
    let answered = start.elapsed();
    let status = out
        .expect("A answered before the caller's own deadline")
        .expect_err("no reply");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        answered < Duration::from_millis(250),
        "answered after {answered:?}"
    );

    let events = chain.finish().await;
    let started = by_name(&events, |e| match e {
        Event::Started { name, deadline, .. } => Some((*name, *deadline)),
        _ => None,
    });
    for name in ["A", "B", "C"] {
        let seen = started[name][0].expect("a deadline");
        assert!(
            seen <= deadline,
            "{name} saw {:?} past the caller's deadline",
            seen - deadline
        );
    }
    let c_deadline = started["C"][0].unwrap();
    assert!(
        c_deadline <= started["B"][0].unwrap()
            && started["B"][0].unwrap() <= started["A"][0].unwrap()
    );
    let ended = by_name(&events, |e| match e {
        Event::Ended {
            name,
            at,
            cause,
            code,
        } => Some((*name, (*at, *cause, *code))),
        _ => None,
    });
    for name in ["A", "B", "C"] {
        let (at, _, _) = ended[name][0];
        assert!(
            at - start < Duration::from_millis(250),
            "{name} ended after {:?}",
            at - start
        );
    }
    // C was force-exited at its deadline: by its own timer, or by B's call expiring at the same
    // instant (B's timer is set no later than C's deadline); B and A returned the status.
    assert!(
        matches!(
            ended["C"][0].1,
            Some(RequestCancel::DeadlineExceeded | RequestCancel::ClientDisconnected)
        ),
        "{events:?}"
    );
    assert_eq!(ended["B"][0].2, Some(Code::DeadlineExceeded));
    assert_eq!(ended["A"][0].2, Some(Code::DeadlineExceeded));
    cleanups_once(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropping_its_request_cancels_all_three() {
    let mut chain = chain().await;
    let caller = chain.caller.clone();
    let start = Instant::now();
    let call = tokio::spawn(tokio_nursery::move_on_after(
        Duration::from_millis(200),
        call(caller, Hop::default()),
    ));
    // Drop the request once C is running (or at 50 ms, whichever is later).
    let mut early = Vec::new();
    tokio::time::timeout(HANG_GUARD, async {
        while !early
            .iter()
            .any(|e| matches!(e, Event::Started { name: "C", .. }))
        {
            early.push(chain.events.recv().await.expect("events"));
        }
    })
    .await
    .expect("C started");
    tokio::time::sleep_until(start + Duration::from_millis(50)).await;
    // Taken before the abort: on a multi-thread runtime the abort can take effect on the other
    // worker before `abort()` returns here.
    let dropped_at = Instant::now();
    call.abort();
    let mut events = early;
    events.extend(chain.finish().await);
    let ended = by_name(&events, |e| match e {
        Event::Ended {
            name,
            at,
            cause,
            code,
        } => Some((*name, (*at, *cause, *code))),
        _ => None,
    });
    for name in ["A", "B", "C"] {
        let (at, cause, code) = ended[name][0];
        assert_eq!(
            cause,
            Some(RequestCancel::ClientDisconnected),
            "{name}: {events:?}"
        );
        assert_eq!(code, None, "{name} did not run on to an answer");
        assert!(at >= dropped_at, "{name} ended before the drop");
        assert!(
            at - start < Duration::from_millis(200),
            "{name} ran on for {:?}",
            at - start
        );
    }
    cleanups_once(&events);
}
