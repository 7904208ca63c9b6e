//! Where each child was spawned or started, as the snapshot of the live tree shows it: the
//! location comes from `#[track_caller]` on every spawning method, so it names the user's line,
//! not the library's.

mod support;

use std::future::pending;
use std::num::NonZeroUsize;

use support::*;
use tokio_nursery::{
    move_on_after, nursery, snapshot_current_tree, NodeKindView, NodeSnapshot, NurseryBuilder,
    Started,
};

type Forever = Result<(), TestError>;

/// Every child in the snapshot, by name: its location's file and line.
fn child_sites(node: &NodeSnapshot, out: &mut Vec<(String, &'static str, u32)>) {
    if node.kind == NodeKindView::Child {
        let name = node.name.clone().unwrap_or_else(|| "(unnamed)".into());
        let site = node.location.as_ref().expect("every child has a location");
        out.push((name, site.file, site.line));
    }
    for child in &node.children {
        child_sites(child, out);
    }
}

fn sites(root: &NodeSnapshot) -> Vec<(String, u32)> {
    let mut all = Vec::new();
    child_sites(root, &mut all);
    for (name, file, _) in &all {
        assert!(
            file.ends_with("introspection_locations.rs"),
            "{name} is located in {file}, not at the user's call"
        );
    }
    let mut lines: Vec<(String, u32)> = all.into_iter().map(|(n, _, l)| (n, l)).collect();
    lines.sort();
    lines
}

/// A child that makes its own node (a scope inside it), so it is shown through that node.
async fn with_a_node() -> Forever {
    move_on_after(secs(1_000), pending::<()>()).await;
    Ok(())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_kind_of_child_shows_the_line_that_spawned_it() {
    let (snapshot, mut expected) = nursery(|n| async move {
        let mut expected = Vec::new();
        expected.push(("lazy".to_string(), line!() + 1));
        n.spawn_named("lazy", pending::<Forever>());
        expected.push(("(unnamed)".to_string(), line!() + 1));
        n.spawn(pending::<Forever>());
        expected.push(("with_node".to_string(), line!() + 1));
        n.spawn_named("with_node", with_a_node());
        expected.push(("borrowing".to_string(), line!() + 1));
        n.spawn_borrowing_named("borrowing", pending::<Forever>());
        let handle = n.handle();
        expected.push(("remote".to_string(), line!() + 1));
        handle.spawn_named("remote", pending::<Forever>()).unwrap();
        expected.push(("started".to_string(), line!() + 1));
        n.start_named("started", |s: Started<()>| async move {
            s.started(());
            pending::<Forever>().await
        })
        .await
        .unwrap();
        // Let every spawned child run once (the one with a scope makes its node).
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let snapshot = snapshot_current_tree().expect("inside the tree");
        n.cancel();
        Ok::<_, TestError>((snapshot, expected))
    })
    .await
    .unwrap();
    expected.sort();
    assert_eq!(sites(&snapshot), expected);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn children_of_a_limited_nursery_show_their_spawn_line_too() {
    let (snapshot, mut expected) = NurseryBuilder::new()
        .limit(NonZeroUsize::new(2).unwrap())
        .run(|n| async move {
            let mut expected = Vec::new();
            expected.push(("(unnamed)".to_string(), line!() + 1));
            n.try_spawn(pending::<Forever>())
                .map_err(|_| TestError("full"))?;
            expected.push(("(unnamed)".to_string(), line!() + 1));
            n.spawn_when_ready(pending::<Forever>()).await;
            tokio::task::yield_now().await;
            let snapshot = snapshot_current_tree().expect("inside the tree");
            n.cancel();
            Ok::<_, TestError>((snapshot, expected))
        })
        .await
        .unwrap();
    expected.sort();
    assert_eq!(sites(&snapshot), expected);
}
