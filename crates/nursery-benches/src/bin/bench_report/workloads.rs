//! The hand-written text for each known workload. Edit here; unknown workloads still get a
//! generic table.

/// What the report says about one workload.
#[derive(Debug)]
pub(crate) struct Workload {
    /// Criterion group prefix or measurement `workload`.
    pub(crate) name: &'static str,
    /// Section heading after the name.
    pub(crate) title: &'static str,
    /// What is measured, and what a user would use instead.
    pub(crate) intro: &'static str,
    /// Column heading for the criterion parameter.
    pub(crate) param: &'static str,
    /// For per-child workloads, the unit the median is divided by the parameter into.
    pub(crate) per: Option<&'static str>,
}

/// Known workloads, in report order.
pub(crate) const WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn_join",
        title: "spawn N children and wait for all",
        intro: "Spawn N children that each read their index and complete, and wait for all of \
them (N = 1 000 and 100 000). `nursery` spawns them with `Nursery::spawn` and returns when the \
nursery closes. What a tokio user writes instead: a `JoinSet` drained with `join_next` \
(`joinset`); bare `tokio::spawn` with every `JoinHandle` awaited (`raw_spawn`: no cancellation, \
no error propagation, the floor any supervision is paid on top of); a `TaskTracker` with a \
child `CancellationToken` per task (`tracker_token`); and, without tasks, a `FuturesUnordered` \
(`futures_unordered`) or `moro::async_scope!` (`moro`), both polled in place.",
        param: "children",
        per: Some("child"),
    },
    Workload {
        name: "spawn_join_typical",
        title: "spawn N children with 256 bytes of state and wait for all",
        intro: "`spawn_join` again, with children that keep 256 bytes of state across an await \
(a small protocol handler's buffer), the same for every implementation. tokio rounds task cells \
to 128 bytes: with a tiny child, the few bytes a supervising runner adds can double the cell, \
which a realistic child absorbs. Both sizes are held to the same targets.",
        param: "children",
        per: Some("child"),
    },
    Workload {
        name: "cancel_fanout",
        title: "cancel 100 000 waiting children",
        intro: "Cancel a parent whose 100 000 children are all waiting forever, and wait until \
everything has stopped. Only the unwind is timed, from the cancel call on; building and spawning \
are not. `nursery`: `Nursery::cancel()` until `nursery(..)` returns. The hand-rolled peer is a \
`TaskTracker` whose tasks each select on a child `CancellationToken` (`tracker_token`: cancel, \
close, wait); also shown, tasks without any cancellation protocol: `JoinSet::abort_all` \
(`joinset`) and `JoinHandle::abort` on each (`raw_spawn`).",
        param: "children",
        per: Some("child"),
    },
    Workload {
        name: "cancel_nested",
        title: "cancel a deep nesting",
        intro: "Cancel the outermost of D nested scopes (D = 100, 1 000, 5 000; the innermost \
waits forever) and wait until the whole chain has unwound. `nursery`: D nested \
`CancelScope::new().run(..)`, cancelled through the outermost `CancelHandle`. The peer is D \
chained child `CancellationToken`s, each level `select!`ing on its own token (`token_chain`). \
The target is on the shape: the cost per level at depth 5 000 must stay within 1.25× the cost \
per level at depth 1 000 (linear, not quadratic, unwinding).",
        param: "depth",
        per: Some("level"),
    },
    Workload {
        name: "scope_ready",
        title: "a deadline scope around a ready future",
        intro: "Enter and leave a scope with a deadline around a body that is ready at once, so \
no timer is armed: the toll every call wrapped in a deadline pays on the fast path. One \
iteration is 1 000 scopes in a row (`x1000`). `nursery`: `tokio_nursery::move_on_after(60 s, body)`; \
the peer is `tokio::time::timeout(60 s, body)` (`timeout`); `nursery_plain` is \
`CancelScope::new().run(body)`, a scope without a deadline.",
        param: "scopes",
        per: Some("scope"),
    },
    Workload {
        name: "scope_deadline",
        title: "a deadline scope whose timer is armed",
        intro: "The same, with a body that yields once before returning, so the deadline is \
armed as a timer and deregistered when the scope ends: `tokio_nursery::move_on_after` (`nursery`) and \
`tokio_nursery::fail_after` (`nursery_fail_after`) against `tokio::time::timeout` (`timeout`), 1 000 \
scopes per iteration. Informative: no target.",
        param: "scopes",
        per: Some("scope"),
    },
    Workload {
        name: "borrowing",
        title: "children borrowing from the stack",
        intro: "N children (N = 10 and 1 000) that borrow a slice element and a counter from the \
caller's stack, yield once, add to the counter and complete, through \
`Nursery::spawn_borrowing`. Borrowing children are polled in place, not spawned as tasks, so the \
peers are the two ways to do that without `'static`: a `FuturesUnordered` drained to empty \
(`futures_unordered`) and `moro::async_scope!` (`moro`).",
        param: "children",
        per: Some("child"),
    },
    Workload {
        name: "policy",
        title: "children under a completion policy",
        intro: "1 000 children that yield once and complete, spawned with `Nursery::spawn` into \
a plain nursery (`plain`), a supervisor (`supervisor`), a nursery limited to 1 000 so no child \
waits (`limit_unreached`: the permit bookkeeping alone) and one limited to 16 (`limit_16`: \
children wait in line and start as slots free). Targets: `supervisor` and `limit_unreached` \
within 1.10× of `plain`; `limit_16` is informative.",
        param: "children",
        per: Some("child"),
    },
    Workload {
        name: "local_get",
        title: "reading a context value",
        intro: "1 000 reads of a `u64` context value inside one binding (`x1000`). `nursery`: \
`Local::get` with the key the only one bound; `nursery_5_bound`: the same with four other keys \
bound inside it, which the lookup passes first; the peer is `tokio::task_local!`'s \
`LocalKey::get` (`task_local`), whose values children do not inherit. Target: `nursery` within \
1.20× of `task_local`.",
        param: "reads",
        per: Some("read"),
    },
    Workload {
        name: "local_scope",
        title: "binding a context value",
        intro: "1 000 binds of a `u64` context value around a ready future that reads it once \
(`x1000`): `Local::scope` (`nursery`: one allocation per bind, the binding children inherit) \
against `tokio::task_local!`'s `LocalKey::scope` (`task_local`). Informative: no target.",
        param: "binds",
        per: Some("bind"),
    },
    Workload {
        name: "heap_per_child",
        title: "heap bytes per live child",
        intro: "Heap bytes held per child while 10 000 children are alive, polled once and \
waiting, counted by dhat's counting allocator (live heap difference divided by N; the heap must \
return to its start afterwards). The peers hold the same children as `JoinSet` tasks \
(`joinset`), `TaskTracker` tasks with a child `CancellationToken` each (`tracker_token`), or bare \
`tokio::spawn` with the handles kept in a `Vec` (`raw_spawn`).",
        param: "case",
        per: None,
    },
    Workload {
        name: "rss_scale",
        title: "resident memory per live child at scale",
        intro: "N children (10 000, 100 000 and 1 000 000) that are all polled once and then \
wait, each case in a fresh process (glibc malloc, current-thread runtime): resident bytes \
(`VmRSS` with all N live, less `VmRSS` before the first spawn) divided by N, which counts the \
allocator's size classes and the growth steps of every table, where `heap_per_child` counts \
requested bytes. `peak_mb` is `VmHWM`. `nursery`: `Nursery::spawn`; `joinset`: `tokio::spawn` \
tasks in a `JoinSet`.",
        param: "case",
        per: None,
    },
    Workload {
        name: "cancel_scale",
        title: "cancelling all children at scale",
        intro: "The children of `rss_scale`, then all cancelled at once and awaited, in the same \
processes: nanoseconds from the cancel to the last child gone (`nursery`: `Nursery::cancel` \
and the nursery returning; `joinset`: `abort_all` and `join_next` drained). The target is \
linearity: the time per child at 1 000 000 against the time per child at 10 000.",
        param: "case",
        per: None,
    },
    Workload {
        name: "force_exit",
        title: "fault to typed error on a supervised connection",
        intro: "Latency on loopback from a fault injected by the peer to the caller holding the \
typed `ConnectionLost`, through `nursery_net::supervise` (watcher, force-exit of the body, \
bounded close). One case per fault and runtime: a WebSocket close frame, a TCP reset, an \
external `LossSignal::trigger`, a TCP EOF. The peer is what a user writes by hand: the same \
stream read in a `tokio::select!` next to the body, returning on the first error \
(`select_baseline`). The row value is the p99 latency in µs.",
        param: "case",
        per: None,
    },
    Workload {
        name: "idle_connections",
        title: "cost of idle supervised connections",
        intro: "10 000 idle WebSocket connections with 1 s heartbeats: the CPU the client process \
uses meanwhile, in percent of one core, and its resident memory (`rss_mb`). `nursery`: one \
`supervise` per connection with a heartbeat; the peer is a plain tokio-tungstenite client with \
a task per connection that pings every second and reads pongs (`ws_baseline`), and the same \
with the 4 KiB read buffer `nursery-net` uses (`ws_baseline_4k`).",
        param: "case",
        per: None,
    },
    Workload {
        name: "echo_throughput",
        title: "echo throughput of a supervised WebSocket",
        intro: "Numbered messages sent and echoed back on loopback over one WebSocket \
connection, the echoes read concurrently with the sends: the median time per echoed message in \
ns (lower is better; `msgs_per_s` is its inverse). `nursery`: `supervise(WsConnection, body)` \
with the body's `send` and `recv` joined; the peer is the same tokio-tungstenite stream split \
into sink and stream by hand (`ws_baseline`). The server is a plain tokio-tungstenite echo loop \
on its own thread.",
        param: "case",
        per: None,
    },
    Workload {
        name: "instructions",
        title: "instructions per operation (callgrind)",
        intro: "The spawn (tiny children and, as `spawn_join_typical`, children with 256 bytes of \
state), scope, borrowing, policy and context-value (`locals`: one `Local` or `task_local!` read \
or bind per operation) workloads again, counted in instructions by \
valgrind's callgrind instead of timed: the program re-runs itself under callgrind at two \
iteration counts and divides the difference by the operations done, so startup cancels out. \
Counts repeat exactly run after run, where timings on a shared machine move by tens of percent; \
they do not see cache misses or page faults, which the timed tables do.",
        param: "case",
        per: None,
    },
    Workload {
        name: "tower_layer",
        title: "per-request cost of the tower server layer",
        intro: "A service that answers `hello` at once, called with `grpc-timeout: 5S`, alone \
(`bare`) and under `nursery_tower::ServerLayer` (`nursery`: the deadline parsed, a cancel scope \
and a nursery per request, the request spawned into the server's root nursery, the body \
relayed). `hyper_http1`: a whole HTTP/1.1 round trip, hyper client to hyper server over an \
in-memory pipe on one current-thread runtime; `service_call`: `ready().call()` and the body \
collected, no server (an upper bound of the ratio). Values are callgrind instructions per \
request; `allocations` and `bytes allocated` per request come from dhat.",
        param: "case",
        per: None,
    },
];

/// The entry for `name`, if it is a known workload.
pub(crate) fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// Report order: known workloads in [`WORKLOADS`] order, then the rest alphabetically.
pub(crate) fn rank(name: &str) -> (usize, String) {
    let known = WORKLOADS.iter().position(|w| w.name == name);
    (known.unwrap_or(WORKLOADS.len()), name.to_string())
}
