//! The structured snapshot of the live tree (`NodeSnapshot`): what it holds, its JSON form
//! (feature `serde`), and `testing::timeout`, which prints the tree when a future hangs.

mod support;

use std::future::pending;
use std::time::Duration;

use support::*;
use tokio_nursery::{
    nursery, snapshot_current_tree, CancelScope, NodeKindView, NodeSnapshot, NodeState,
};

fn find<'a>(node: &'a NodeSnapshot, name: &str) -> Option<&'a NodeSnapshot> {
    if node.name.as_deref() == Some(name) {
        return Some(node);
    }
    node.children.iter().find_map(|c| find(c, name))
}

/// A grace scope draining around a nursery with an idle child and a scope with a deadline.
async fn draining_tree() -> (NodeSnapshot, u32, u32) {
    let outer_line = line!() + 1;
    let outer = CancelScope::new().with_name("outer").with_grace(secs(3));
    let handle = outer.handle();
    let out = outer
        .run(async {
            nursery(|n| async move {
                n.spawn_named("idle", pending::<Result<(), TestError>>());
                let inner_line = line!() + 1;
                let inner = CancelScope::new().with_name("inner").with_timeout(secs(10));
                let snapshot = inner
                    .run(async {
                        tokio::time::sleep(secs(4)).await;
                        // The outer scope starts draining: nothing inside is cancelled yet.
                        handle.cancel_with("shutting down");
                        snapshot_current_tree().expect("inside the tree")
                    })
                    .await
                    .expect("not cancelled while the outer scope drains");
                n.cancel();
                Ok::<_, TestError>((snapshot, inner_line))
            })
            .await
        })
        .await;
    let (snapshot, inner_line) = out.expect("completed while draining").expect("no failure");
    (snapshot, outer_line, inner_line)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_snapshot_holds_kinds_states_reasons_deadlines_grace_and_locations() {
    let (root, outer_line, inner_line) = draining_tree().await;
    assert_eq!(root.kind, NodeKindView::Scope);
    assert_eq!(root.name.as_deref(), Some("outer"));
    assert_eq!(root.state, NodeState::Draining);
    assert!(root
        .cancel_reason
        .as_deref()
        .unwrap()
        .contains("shutting down"));
    assert_eq!(root.grace, Some(secs(3)));
    let location = root.location.as_ref().expect("a location");
    assert!(
        location.file.ends_with("introspection_snapshot.rs"),
        "{location:?}"
    );
    assert_eq!(location.line, outer_line);

    let nursery = &root.children[0];
    assert_eq!(nursery.kind, NodeKindView::Nursery);
    assert_eq!(nursery.state, NodeState::Running);
    assert_eq!(
        nursery.location.as_ref().map(|l| l.line),
        Some(outer_line + 4)
    );

    let idle = find(&root, "idle").expect("the idle child");
    assert_eq!(
        (idle.kind, idle.state),
        (NodeKindView::Child, NodeState::Running)
    );

    let inner = find(&root, "inner").expect("the inner scope");
    assert_eq!(inner.state, NodeState::Running);
    assert_eq!(inner.deadline_in, Some(secs(6)));
    assert_eq!(inner.location.as_ref().map(|l| l.line), Some(inner_line));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_snapshot_serializes_to_json_and_the_text_rendering_is_built_on_it() {
    let (root, _, _) = draining_tree().await;
    let json = serde_json::to_value(&root).expect("serializable");
    assert_eq!(json["kind"], "scope");
    assert_eq!(json["state"], "draining");
    assert_eq!(json["name"], "outer");
    assert_eq!(json["grace"]["secs"], 3);
    assert_eq!(json["children"][0]["kind"], "nursery");
    let inner = &json["children"][0]["children"];
    assert!(
        inner.to_string().contains("\"name\":\"idle\""),
        "the idle child is listed: {inner}"
    );
    let text = serde_json::to_string_pretty(&root).unwrap();
    assert!(text.contains("\"deadline_in\""));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hanging_future_under_testing_timeout_panics_with_its_live_tree() {
    let hung = tokio::spawn(tokio_nursery::testing::timeout(
        secs(5),
        nursery(|n| async move {
            n.spawn_named("stuck", pending::<Result<(), TestError>>());
            CancelScope::new()
                .with_name("waiting for a reply")
                .run(pending::<()>())
                .await;
            Ok::<_, TestError>(())
        }),
    ));
    let payload = hung.await.expect_err("it panicked").into_panic();
    let message = payload.downcast_ref::<String>().expect("a message");
    assert!(
        message.starts_with("testing::timeout: not finished after 5s"),
        "{message}"
    );
    assert!(
        message.contains("scope \"testing::timeout\" [running]"),
        "{message}"
    );
    assert!(message.contains("child \"stuck\" [running]"), "{message}");
    assert!(
        message.contains("scope \"waiting for a reply\" [running]"),
        "{message}"
    );
    let fine = tokio_nursery::testing::timeout(secs(5), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        1
    })
    .await;
    assert_eq!(fine, 1);
}
