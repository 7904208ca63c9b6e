//! Bad input at the server layer: malformed, negative, huge and overflowing timeouts, a deadline
//! already passed on arrival, and the plain-HTTP variants. None of them panics or reaches the
//! service when it should not.

mod support;

use std::time::Duration;

use http_body_util::Full;
use support::probe::{Probe, ProbeService};
use support::raw::{grpc_request, request};
use support::serve::start;
use tokio::sync::mpsc;
use tokio::time::Instant;

async fn probe_server(
    max: Option<Duration>,
) -> (support::serve::Server, mpsc::UnboundedReceiver<Probe>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = start(
        ProbeService { events: tx },
        Duration::from_millis(50),
        move |layer| {
            let layer = layer.timeout_header(http::HeaderName::from_static("grpc-timeout"));
            match max {
                Some(max) => layer.max_timeout(max),
                None => layer,
            }
        },
        true,
    )
    .await;
    (server, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_timeouts_get_invalid_argument_and_never_reach_the_service() {
    let (server, mut rx) = probe_server(None).await;
    let bad: &[&[u8]] = &[
        b"-5S",
        b"+5S",
        b"1.5S",
        b"5 S",
        b"S",
        b"",
        b"5",
        b"5s",
        b"5SS",
        b"123456789m",
        b"99999999999999999999H",
        b"18446744073709551616n",
        b"\xff\xfeS",
    ];
    for value in bad {
        let answer = request(
            server.addr,
            true,
            grpc_request(server.addr, "/ok", &[("grpc-timeout", value)]),
        )
        .await;
        assert_eq!(answer.status, http::StatusCode::OK);
        assert_eq!(
            answer.grpc_status(),
            Some("3"),
            "{:?}",
            String::from_utf8_lossy(value)
        );
        assert_eq!(
            answer.headers.get("grpc-message").unwrap(),
            "malformed timeout header"
        );
    }
    server.stop().await;
    assert!(rx.try_recv().is_err(), "the service was called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_passed_on_arrival_is_deadline_exceeded_without_calling_the_service() {
    let (server, mut rx) = probe_server(None).await;
    for value in ["0n", "0H", "00000000m"] {
        let answer = request(
            server.addr,
            true,
            grpc_request(server.addr, "/ok", &[("grpc-timeout", value.as_bytes())]),
        )
        .await;
        assert_eq!(answer.grpc_status(), Some("4"), "{value}");
    }
    server.stop().await;
    assert!(rx.try_recv().is_err(), "the service was called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_timeouts_are_capped_by_the_server_maximum() {
    let (server, mut rx) = probe_server(Some(Duration::from_secs(2))).await;
    let before = Instant::now();
    let answer = request(
        server.addr,
        true,
        grpc_request(server.addr, "/ok", &[("grpc-timeout", b"99999999H")]),
    )
    .await;
    assert_eq!(answer.grpc_status(), Some("0"));
    // Without a timeout, the maximum applies too.
    let answer = request(server.addr, true, grpc_request(server.addr, "/ok", &[])).await;
    assert_eq!(answer.grpc_status(), Some("0"));
    let after = Instant::now();
    server.stop().await;
    let mut deadlines = Vec::new();
    while let Ok(event) = rx.try_recv() {
        if let Probe::Called { deadline, .. } = event {
            deadlines.push(deadline.expect("capped"));
        }
    }
    assert_eq!(deadlines.len(), 2);
    for d in deadlines {
        assert!(d >= before + Duration::from_secs(2) && d <= after + Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_timeout_without_a_maximum_is_a_far_deadline_not_an_overflow() {
    let (server, mut rx) = probe_server(None).await;
    let answer = request(
        server.addr,
        true,
        grpc_request(server.addr, "/ok", &[("grpc-timeout", b"99999999H")]),
    )
    .await;
    assert_eq!(answer.grpc_status(), Some("0"));
    server.stop().await;
    let Ok(Probe::Called { deadline, .. }) = rx.try_recv() else {
        panic!("called")
    };
    if let Some(deadline) = deadline {
        assert!(deadline > Instant::now() + Duration::from_secs(3600 * 24 * 365));
    }
}

fn http_request(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: Option<&str>,
) -> http::Request<Full<bytes::Bytes>> {
    let mut builder =
        http::Request::get(format!("http://{addr}{path}")).header("host", "localhost");
    if let Some(t) = timeout {
        builder = builder.header("x-timeout", t);
    }
    builder.body(Full::default()).unwrap()
}

async fn http_server() -> (support::serve::Server, mpsc::UnboundedReceiver<Probe>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = start(
        ProbeService { events: tx },
        Duration::from_millis(50),
        |layer| layer.timeout_header(http::HeaderName::from_static("x-timeout")),
        false,
    )
    .await;
    (server, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_gets_400_504_and_its_request_id() {
    let (server, mut rx) = http_server().await;
    let answer = request(
        server.addr,
        false,
        http_request(server.addr, "/ok", Some("-1m")),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::BAD_REQUEST);
    let answer = request(
        server.addr,
        false,
        http_request(server.addr, "/ok", Some("0m")),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::GATEWAY_TIMEOUT);
    let started = Instant::now();
    let answer = request(
        server.addr,
        false,
        http_request(server.addr, "/sleep", Some("100m")),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut with_id = http_request(server.addr, "/ok", Some("5S"));
    with_id
        .headers_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let answer = request(server.addr, false, with_id).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    server.stop().await;
    let mut seen = Vec::new();
    while let Ok(event) = rx.try_recv() {
        seen.push(event);
    }
    let called: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Probe::Called { path, id, .. } => Some((path.as_str(), id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        called,
        [("/sleep", None), ("/ok", Some("req-42".to_owned()))],
        "{seen:?}"
    );
    assert!(
        seen.contains(&Probe::Ended {
            path: "/sleep".into(),
            cause: Some(nursery_tower::RequestCancel::DeadlineExceeded)
        }),
        "{seen:?}"
    );
    assert_eq!(
        support::probe::count(&seen, |e| matches!(e, Probe::Cleanup { .. })),
        2,
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gets_internal_and_the_server_keeps_serving() {
    let (server, mut rx) = probe_server(None).await;
    let answer = request(server.addr, true, grpc_request(server.addr, "/panic", &[])).await;
    assert_eq!(answer.grpc_status(), Some("13"));
    let answer = request(server.addr, true, grpc_request(server.addr, "/ok", &[])).await;
    assert_eq!(answer.grpc_status(), Some("0"));
    server.stop().await;
    let mut cleanups = 0;
    while let Ok(e) = rx.try_recv() {
        cleanups += usize::from(matches!(e, Probe::Cleanup { .. }));
    }
    assert_eq!(cleanups, 2, "the panicking request's cleanup ran too");
}
