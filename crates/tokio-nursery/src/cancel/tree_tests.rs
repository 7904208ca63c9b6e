//! Unit tests of the cancel tree (`tree.rs`): propagation, shields, deadlines, live counting.

use super::*;

fn chain(depth: usize) -> Vec<Arc<Node>> {
    let mut nodes: Vec<Arc<Node>> = Vec::with_capacity(depth);
    for _ in 0..depth {
        let node = Node::new(NodeKind::Scope, None);
        node.attach(nodes.last());
        nodes.push(node);
    }
    nodes
}

#[test]
fn cancel_reaches_every_descendant_once() {
    let nodes = chain(5);
    assert!(nodes[1].cancel(CancelReason::explicit(None)));
    assert!(!nodes[0].is_cancelled());
    assert!(nodes[1..].iter().all(|n| n.is_cancelled()));
    assert!(
        !nodes[1].cancel(CancelReason::Deadline),
        "first reason wins"
    );
    assert!(nodes[1].own_reason().unwrap().is_explicit());
    let inherited = nodes[4].public_reason().unwrap();
    assert!(matches!(inherited, CancelReason::ParentCancelled(_)));
    assert!(inherited.origin().is_explicit());
}

#[test]
fn shield_blocks_and_unshield_delivers() {
    let nodes = chain(4);
    nodes[2].set_shield(true);
    nodes[0].cancel(CancelReason::Deadline);
    assert!(nodes[1].is_cancelled());
    assert!(!nodes[2].is_cancelled() && !nodes[3].is_cancelled());
    nodes[2].set_shield(false);
    assert!(nodes[2].is_cancelled() && nodes[3].is_cancelled());
    nodes[2].set_shield(true);
    assert!(!nodes[2].is_cancelled() && !nodes[3].is_cancelled());
    nodes[3].cancel(CancelReason::explicit(None));
    nodes[2].set_shield(false);
    assert!(nodes[3].is_cancelled());
}

#[test]
fn attach_under_cancelled_parent_inherits() {
    let root = Node::new(NodeKind::Scope, None);
    root.attach(None);
    root.cancel(CancelReason::Deadline);
    let child = Node::new(NodeKind::Child, None);
    child.attach(Some(&root));
    assert!(child.is_cancelled());
    let shielded = Node::new(NodeKind::Scope, None);
    shielded.init_shield(true);
    shielded.attach(Some(&root));
    assert!(!shielded.is_cancelled());
}

#[test]
fn deep_chain_cancels_and_drops_without_recursion() {
    let depth = 200_000;
    let nodes = chain(depth);
    nodes[0].cancel(CancelReason::Deadline);
    assert!(nodes[depth - 1].is_cancelled());
    // Drop from the root end so each parent is still referenced by its child's link.
    let last = nodes.last().cloned();
    drop(nodes);
    drop(last);
}

#[test]
fn effective_deadline_stops_at_shield() {
    let nodes = chain(3);
    let now = Instant::now();
    let later = now + std::time::Duration::from_secs(10);
    let earlier = now + std::time::Duration::from_secs(5);
    nodes[0].set_deadline(Some(earlier));
    nodes[2].set_deadline(Some(later));
    assert_eq!(nodes[2].effective_deadline(now), Some(earlier));
    nodes[2].set_shield(true);
    assert_eq!(nodes[2].effective_deadline(now), Some(later));
    nodes[2].cancel(CancelReason::Deadline);
    assert_eq!(nodes[2].effective_deadline(now), Some(now));
}

#[test]
fn live_tokens_wake_and_release_stash_iteratively() {
    let nodes = chain(10_000);
    // Every node keeps a token on its parent, then is "dropped" with live structure inside.
    let leaf_token = LiveToken::new(nodes.last().unwrap());
    for pair in nodes.windows(2).rev() {
        pair[1].stash_parent_token(LiveToken::new(&pair[0]));
    }
    assert_eq!(nodes[0].live(), 1);
    drop(leaf_token);
    assert!(nodes.iter().all(|n| n.live() == 0));
}

/// Recomputes invariant 1 from scratch for `nodes` (all quiescent).
fn formula_holds(nodes: &[Arc<Node>]) -> bool {
    nodes.iter().all(|n| {
        let inner = lock(&n.inner);
        let expected = n.own_reason.get().is_some()
            || (!inner.shield && inner.parent.as_ref().is_some_and(|p| p.is_cancelled()));
        n.is_cancelled() == expected
    })
}

#[test]
fn racing_cancels_shields_and_attaches_converge() {
    use std::sync::Barrier;
    for round in 0..200u64 {
        // A small tree: 0 is the root, node i hangs under (i - 1) / 2.
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        for i in 0..15usize {
            let node = Node::new(NodeKind::Scope, None);
            node.attach(if i == 0 {
                None
            } else {
                Some(&nodes[(i - 1) / 2])
            });
            nodes.push(node);
        }
        let barrier = Arc::new(Barrier::new(4));
        let late: Vec<Arc<Node>> = (0..8).map(|_| Node::new(NodeKind::Child, None)).collect();
        std::thread::scope(|s| {
            let (nodes, late) = (&nodes, &late);
            let b = barrier.clone();
            s.spawn(move || {
                b.wait();
                nodes[(round % 7) as usize].cancel(CancelReason::Deadline);
            });
            let b = barrier.clone();
            s.spawn(move || {
                b.wait();
                for i in [1usize, 2, 5] {
                    nodes[i].set_shield(true);
                }
                nodes[2].set_shield(false);
            });
            let b = barrier.clone();
            s.spawn(move || {
                b.wait();
                for (i, node) in late.iter().enumerate() {
                    node.attach(Some(&nodes[7 + i]));
                }
            });
            barrier.wait();
            nodes[0].cancel(CancelReason::explicit(None));
        });
        let all: Vec<Arc<Node>> = nodes.iter().chain(late.iter()).cloned().collect();
        assert!(
            formula_holds(&all),
            "round {round}: cached bits disagree with the formula"
        );
    }
}
