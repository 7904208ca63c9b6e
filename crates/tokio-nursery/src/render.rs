//! Text rendering of the live tree, for people: one line per node of the snapshot
//! (`snapshot.rs`), with its kind, name and state.

use std::fmt::Write;
use std::sync::Arc;

use crate::cancel::tree::Node;
use crate::snapshot::{self, NodeKindView, NodeSnapshot, NodeState};

/// Renders `root` and everything attached below it.
pub(crate) fn render(root: &Arc<Node>) -> String {
    render_snapshot(&snapshot::snapshot(root))
}

/// Renders the whole tree the calling code runs in, from its outermost scope.
pub(crate) fn render_current() -> String {
    match snapshot::snapshot_current_tree() {
        Some(root) => render_snapshot(&root),
        None => String::from("(not inside a scope, nursery or child)\n"),
    }
}

/// One line per node, depth first, with box-drawing prefixes. Iterative.
pub(crate) fn render_snapshot(root: &NodeSnapshot) -> String {
    let mut out = String::new();
    // (node, prefix for its own line, prefix for its children)
    let mut stack: Vec<(&NodeSnapshot, String, String)> =
        vec![(root, String::new(), String::new())];
    while let Some((node, line_prefix, child_prefix)) = stack.pop() {
        let _ = writeln!(out, "{line_prefix}{}", label(node));
        let count = node.children.len();
        // Pushed in reverse so they are rendered in order.
        for (i, child) in node.children.iter().enumerate().rev() {
            let last = i + 1 == count;
            let line = format!("{child_prefix}{}", if last { "└─ " } else { "├─ " });
            let below = format!("{child_prefix}{}", if last { "   " } else { "│  " });
            stack.push((child, line, below));
        }
    }
    out
}

fn label(node: &NodeSnapshot) -> String {
    let kind = match node.kind {
        NodeKindView::Scope => "scope",
        NodeKindView::Nursery => "nursery",
        NodeKindView::Body => "body",
        NodeKindView::Child => "child",
        NodeKindView::Cleanup => "cleanup",
        NodeKindView::CancelHandler => "cancel handler",
    };
    let mut label = String::from(kind);
    if let Some(name) = &node.name {
        let _ = write!(label, " {name:?}");
    }
    let reason = node.cancel_reason.as_deref().unwrap_or("cancelled");
    let _ = match node.state {
        NodeState::Running => write!(label, " [running]"),
        NodeState::Draining => write!(label, " [draining: {reason}]"),
        NodeState::Cancelling => write!(label, " [cancelling: {reason}]"),
        NodeState::Finished => write!(label, " [finished]"),
    };
    label
}
