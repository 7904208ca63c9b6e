//! A structured snapshot of the live tree, for machines: what runs, what unwinds and why, what
//! deadline is left, and where in the user's code each scope, nursery and child was opened or
//! spawned. The text
//! rendering (`render.rs`) is built on it. Behind the `serde` feature it serializes (to JSON,
//! say).
//!
//! The three nodes of a nursery and the gate of a grace scope are implementation detail: a
//! nursery shows its children directly and its body's structure under "body"; gates are skipped.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cancel::context;
use crate::cancel::reason::CancelReason;
use crate::cancel::tree::{Node, NodeKind};

/// What a node of the live tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum NodeKindView {
    /// A cancel scope (`CancelScope`, `move_on_after`, `shield`, ...).
    Scope,
    /// A nursery.
    Nursery,
    /// A nursery's body, shown when structure runs inside it.
    Body,
    /// A spawned, borrowing or started child.
    Child,
    /// A deferred cleanup while it runs.
    Cleanup,
    /// A future guarded by `with_cancel_handler`.
    CancelHandler,
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum NodeState {
    /// Not cancelled.
    Running,
    /// A grace scope that was cancelled and lets its body finish until the grace ends.
    Draining,
    /// Effectively cancelled: unwinding.
    Cancelling,
    /// Finished; shown only while something still refers to it.
    Finished,
}

/// A place in the source, from `#[track_caller]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SourceLocation {
    /// The file, as the compiler names it.
    pub file: &'static str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl SourceLocation {
    fn of(location: &'static std::panic::Location<'static>) -> SourceLocation {
        SourceLocation {
            file: location.file(),
            line: location.line(),
            column: location.column(),
        }
    }
}

/// One node of the live tree and everything shown below it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let scope = tokio_nursery::CancelScope::new().with_name("request");
/// let handle = scope.handle();
/// let snapshot = handle.snapshot_tree();
/// assert_eq!(snapshot.name.as_deref(), Some("request"));
/// assert_eq!(snapshot.state, tokio_nursery::NodeState::Running);
/// assert!(snapshot.location.unwrap().file.ends_with(".rs"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// What it is.
    pub kind: NodeKindView,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Where it is in its life.
    pub state: NodeState,
    /// Why it is cancelled (or draining), as text.
    pub cancel_reason: Option<String>,
    /// Time left until its own deadline (zero once passed); `None` without a deadline.
    pub deadline_in: Option<Duration>,
    /// A grace scope's grace period.
    pub grace: Option<Duration>,
    /// Live structure counted inside it (nested nurseries, running scopes, orphans).
    pub live: usize,
    /// Where the user's code opened or spawned it (scopes, timeouts, nurseries, and children
    /// through every spawning and `start` method); `None` for the library's own structure.
    pub location: Option<SourceLocation>,
    /// What runs below it, in order.
    pub children: Vec<NodeSnapshot>,
}

/// A snapshot of the whole tree the calling code runs in, from its outermost scope; `None`
/// outside any scope, nursery or child of this library.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert!(tokio_nursery::snapshot_current_tree().is_none());
/// let kinds = tokio_nursery::CancelScope::new()
///     .run(async {
///         let root = tokio_nursery::snapshot_current_tree().unwrap();
///         root.kind
///     })
///     .await;
/// assert_eq!(kinds, Some(tokio_nursery::NodeKindView::Scope));
/// # }
/// ```
pub fn snapshot_current_tree() -> Option<NodeSnapshot> {
    let mut node = context::current()?;
    while let Some(parent) = node.parent() {
        node = parent;
    }
    Some(snapshot(&node))
}

/// The snapshot of `root` and everything shown below it. Iterative: depth does not grow the
/// stack.
pub(crate) fn snapshot(root: &Arc<Node>) -> NodeSnapshot {
    let now = Instant::now();
    // Each frame: the snapshot being filled and the items still to visit below it.
    let mut frames: Vec<(NodeSnapshot, std::vec::IntoIter<Item>)> =
        vec![(describe(root, now), shown_children(root).into_iter())];
    loop {
        let next = frames.last_mut().and_then(|(_, items)| items.next());
        match next {
            Some(Item::Node(node)) => {
                let below = shown_children(&node).into_iter();
                frames.push((describe(&node, now), below));
            }
            Some(Item::Lazy(child)) => {
                let lazy = lazy(child);
                if let Some((parent, _)) = frames.last_mut() {
                    parent.children.push(lazy);
                }
            }
            None => {
                let (done, _) = frames.pop().expect("a frame is open");
                match frames.last_mut() {
                    Some((parent, _)) => parent.children.push(done),
                    None => return done,
                }
            }
        }
    }
}

/// A shown child: a node, or a child that has no node yet (a roster slot).
enum Item {
    Node(Arc<Node>),
    Lazy(Lazy),
}

/// A child that has no node yet, as its roster slot describes it.
struct Lazy {
    name: Option<Arc<str>>,
    reason: Option<CancelReason>,
    location: Option<&'static std::panic::Location<'static>>,
}

/// The children to show: skipping structural nodes (gates, a nursery's children group) and an
/// empty nursery body. A children group shows its roster (children with or without a node, in
/// slot order), then any other child attached to it (`start` children).
fn shown_children(node: &Node) -> Vec<Item> {
    let mut shown = Vec::new();
    let mut pending = node.children();
    pending.reverse();
    while let Some(child) = pending.pop() {
        match child.kind() {
            NodeKind::Children => {
                let mut from_roster = Vec::new();
                if let Some(roster) = child.members() {
                    for member in roster.running() {
                        match member.node {
                            Some(made) => {
                                from_roster.push(Arc::clone(&made));
                                shown.push(Item::Node(made));
                            }
                            None => shown.push(Item::Lazy(Lazy {
                                name: member.name,
                                reason: roster.lazy_reason(),
                                location: member.location,
                            })),
                        }
                    }
                }
                for other in child.children() {
                    if !from_roster.iter().any(|n| Arc::ptr_eq(n, &other)) {
                        shown.push(Item::Node(other));
                    }
                }
            }
            NodeKind::Gate => {
                let mut inner = child.children();
                inner.reverse();
                pending.extend(inner);
            }
            NodeKind::Body if child.children().is_empty() => {}
            _ => shown.push(Item::Node(child)),
        }
    }
    shown
}

fn describe(node: &Node, now: Instant) -> NodeSnapshot {
    let kind = match node.kind() {
        NodeKind::Scope | NodeKind::Gate => NodeKindView::Scope,
        NodeKind::Nursery => NodeKindView::Nursery,
        NodeKind::Body | NodeKind::Children => NodeKindView::Body,
        NodeKind::Child => NodeKindView::Child,
        NodeKind::Cleanup => NodeKindView::Cleanup,
        NodeKind::Handler => NodeKindView::CancelHandler,
    };
    let draining = node
        .grace_gate()
        .is_some_and(|gate| node.is_cancelled() && !gate.is_cancelled());
    let state = if node.is_finished() {
        NodeState::Finished
    } else if draining {
        NodeState::Draining
    } else if node.is_cancelled() {
        NodeState::Cancelling
    } else {
        NodeState::Running
    };
    let cancel_reason = matches!(state, NodeState::Draining | NodeState::Cancelling).then(|| {
        node.public_reason()
            .map_or_else(|| String::from("cancelled"), |r| r.to_string())
    });
    NodeSnapshot {
        kind,
        name: node.name().map(|n| n.to_string()),
        state,
        cancel_reason,
        deadline_in: node.deadline().map(|d| d.saturating_duration_since(now)),
        grace: node.grace_period(),
        live: node.live(),
        location: node.location().map(SourceLocation::of),
        children: Vec::new(),
    }
}

fn lazy(child: Lazy) -> NodeSnapshot {
    let (state, cancel_reason) = match child.reason {
        Some(reason) => (NodeState::Cancelling, Some(reason.to_string())),
        None => (NodeState::Running, None),
    };
    NodeSnapshot {
        kind: NodeKindView::Child,
        name: child.name.map(|n| n.to_string()),
        state,
        cancel_reason,
        deadline_in: None,
        grace: None,
        live: 0,
        location: child.location.map(SourceLocation::of),
        children: Vec::new(),
    }
}
