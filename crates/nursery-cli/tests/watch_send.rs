//! `nursery watch` sends: stdin lines, once each, and `--send` messages on every connect.

#![cfg(unix)]

mod support;

use futures_util::SinkExt;
use nursery_net::tungstenite::protocol::frame::coding::CloseCode;
use nursery_net::tungstenite::protocol::CloseFrame;
use nursery_net::tungstenite::Message;
use support::{accept, listener, record, take, Watch};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_lines_arrive_as_messages() {
    let (listener, url) = listener().await;
    let mut watch = Watch::start(&["watch", &url], true);
    let mut ws = accept(&listener).await;
    let mut stdin = watch.child.stdin.take().unwrap();
    stdin
        .write_all(b"subscribe quotes\r\nping 2\n\xff\xfe\n")
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let messages = take(&mut ws, 3).await;
    assert_eq!(
        messages,
        [
            Message::text("subscribe quotes"),
            Message::text("ping 2"),
            Message::binary(vec![0xff, 0xfe]),
        ]
    );
    // The end of stdin ends sending, not watching.
    watch.line_with("sent text (6 bytes): ping 2").await;
    drop(stdin);
    watch.line_with("stdin ended").await;
    watch.signal("TERM");
    let seen = record(&mut ws).await;
    let (code, stdout, _) = watch.finish().await;
    assert_eq!(seen.close_code, Some(1000), "{stdout}");
    assert!(seen.messages.is_empty(), "{:?}", seen.messages);
    assert_eq!(code, Some(0), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_messages_go_out_on_every_connect_in_order() {
    let (listener, url) = listener().await;
    let args = ["watch", &url, "--send", "hello", "--send", "subscribe a"];
    let mut watch = Watch::start(&args, false);
    let mut first = accept(&listener).await;
    let expected = [Message::text("hello"), Message::text("subscribe a")];
    assert_eq!(take(&mut first, 2).await, expected);
    // The server goes away; after the reconnect the messages are sent again.
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "restart".into(),
    };
    first.send(Message::Close(Some(frame))).await.unwrap();
    let mut second = accept(&listener).await;
    assert_eq!(take(&mut second, 2).await, expected);
    watch.line_with("attempt 2: connected").await;
    watch.signal("TERM");
    let seen = record(&mut second).await;
    let (code, stdout, _) = watch.finish().await;
    assert_eq!(seen.close_code, Some(1000), "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("peer closed the connection (code 1001: restart)"),
        "{stdout}"
    );
}
