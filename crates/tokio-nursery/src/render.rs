//! Text rendering of the live tree, for debugging: what is running, what is unwinding, and why.
//!
//! The three nodes of a nursery and the gate of a grace scope are implementation detail: the
//! nursery shows its body's structure under "body" and its children directly; gates are skipped.

use std::fmt::Write;
use std::sync::Arc;

use crate::cancel::context;
use crate::cancel::reason::CancelReason;
use crate::cancel::tree::{Node, NodeKind};

/// One line of the rendering: a node, or a child that has no node yet (a roster slot).
enum Item {
    Node(Arc<Node>),
    Lazy(Option<Arc<str>>, Option<CancelReason>),
}

/// Renders `root` and everything attached below it.
pub(crate) fn render(root: &Arc<Node>) -> String {
    let mut out = String::new();
    // (item, prefix for its own line, prefix for its children)
    let mut stack: Vec<(Item, String, String)> =
        vec![(Item::Node(Arc::clone(root)), String::new(), String::new())];
    while let Some((item, line_prefix, child_prefix)) = stack.pop() {
        let node = match item {
            Item::Node(node) => node,
            Item::Lazy(name, reason) => {
                let _ = writeln!(out, "{line_prefix}{}", lazy_label(name, reason));
                continue;
            }
        };
        let _ = writeln!(out, "{line_prefix}{}", label(&node));
        let shown = shown_children(&node);
        let count = shown.len();
        // Pushed in reverse so they are rendered in order.
        for (i, child) in shown.into_iter().enumerate().rev() {
            let last = i + 1 == count;
            let line = format!("{child_prefix}{}", if last { "└─ " } else { "├─ " });
            let below = format!("{child_prefix}{}", if last { "   " } else { "│  " });
            stack.push((child, line, below));
        }
    }
    out
}

/// Renders the whole tree the calling code runs in, from its outermost scope.
pub(crate) fn render_current() -> String {
    let Some(mut node) = context::current() else {
        return String::from("(not inside a scope, nursery or child)\n");
    };
    while let Some(parent) = node.parent() {
        node = parent;
    }
    render(&node)
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
                    for (name, made) in roster.running() {
                        match made {
                            Some(made) => {
                                from_roster.push(Arc::clone(&made));
                                shown.push(Item::Node(made));
                            }
                            None => shown.push(Item::Lazy(name, roster.lazy_reason())),
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

fn lazy_label(name: Option<Arc<str>>, reason: Option<CancelReason>) -> String {
    let mut label = String::from("child");
    if let Some(name) = name {
        let _ = write!(label, " {name:?}");
    }
    match reason {
        Some(reason) => {
            let _ = write!(label, " [cancelling: {reason}]");
        }
        None => label.push_str(" [running]"),
    }
    label
}

fn label(node: &Node) -> String {
    let kind = match node.kind() {
        NodeKind::Scope => "scope",
        NodeKind::Nursery => "nursery",
        NodeKind::Body => "body",
        NodeKind::Children => "children",
        NodeKind::Child => "child",
        NodeKind::Cleanup => "cleanup",
        NodeKind::Gate => "grace",
        NodeKind::Handler => "cancel handler",
    };
    let mut label = String::from(kind);
    if let Some(name) = node.name() {
        let _ = write!(label, " {name:?}");
    }
    let draining = node
        .grace_gate()
        .is_some_and(|gate| node.is_cancelled() && !gate.is_cancelled());
    let state = if node.is_finished() {
        String::from("finished")
    } else if draining {
        format!("draining: {}", reason(node))
    } else if node.is_cancelled() {
        format!("cancelling: {}", reason(node))
    } else {
        String::from("running")
    };
    let _ = write!(label, " [{state}]");
    label
}

fn reason(node: &Node) -> String {
    node.public_reason()
        .map_or_else(|| String::from("cancelled"), |r| r.to_string())
}
