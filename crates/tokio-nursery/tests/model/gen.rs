//! The generator: random trees of the language in `mod.rs`, numbered.

use super::{Act, ActKind, Action, Child, Cleanup, Leaf, Nursery, Scope, Spec};
use proptest::prelude::*;

/// A duration in ms: sometimes 0, often a multiple of 10 (so that events coincide and the
/// same-instant rules are exercised), otherwise anything up to 300.
pub fn duration() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        1 => Just(0u64),
        4 => (1u64..=30).prop_map(|k| k * 10),
        5 => 1u64..=300,
    ]
}

pub fn positive() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        4 => (1u64..=30).prop_map(|k| k * 10),
        5 => 1u64..=300,
    ]
}

pub fn any_leaf() -> impl Strategy<Value = Spec> + Clone {
    let action = prop_oneof![
        5 => duration().prop_map(Action::Finish),
        2 => duration().prop_map(Action::Fail),
        1 => duration().prop_map(Action::Panic),
        2 => Just(Action::Hang),
    ];
    (action, prop::bool::weighted(0.25)).prop_map(|(action, aware)| {
        Spec::Leaf(Leaf {
            id: 0,
            action,
            aware,
        })
    })
}

/// An act on an enclosing scope: a shield change (on more often than off) or a cancel.
pub fn any_act() -> impl Strategy<Value = Spec> + Clone {
    let kind = prop_oneof![
        3 => Just(ActKind::Shield(true)),
        2 => Just(ActKind::Shield(false)),
        2 => Just(ActKind::Cancel),
    ];
    (kind, 0u8..=3).prop_map(|(kind, up)| {
        Spec::Act(Act {
            id: 0,
            kind,
            up,
            target: None,
        })
    })
}

/// What a sequence holds at the leaves of the tree: scripted leaves and acts.
pub fn any_item() -> impl Strategy<Value = Spec> + Clone {
    prop_oneof![7 => any_leaf(), 3 => any_act()]
}

pub fn seq_of(
    inner: impl Strategy<Value = Spec> + Clone,
) -> impl Strategy<Value = Vec<Spec>> + Clone {
    prop::collection::vec(inner, 0..=3)
}

pub fn any_scope(
    inner: impl Strategy<Value = Spec> + Clone,
) -> impl Strategy<Value = Spec> + Clone {
    let deadline = prop_oneof![1 => Just(0u64), 9 => positive()];
    let grace = prop_oneof![1 => Just(0u64), 4 => positive()];
    (
        prop::option::weighted(0.6, deadline),
        prop::option::weighted(0.3, positive()),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, grace),
        any::<bool>(),
        seq_of(inner),
    )
        .prop_map(|(deadline, cancel_at, shield, grace, fail, body)| {
            Spec::Scope(Scope {
                id: 0,
                fail: fail && deadline.is_some(),
                deadline,
                cancel_at,
                shield,
                grace,
                body,
            })
        })
}

pub fn any_nursery(
    inner: impl Strategy<Value = Spec> + Clone,
) -> impl Strategy<Value = Spec> + Clone {
    let timeout = prop_oneof![Just(30u64), Just(100), Just(250)];
    let child = (prop::bool::weighted(0.3), seq_of(inner.clone()))
        .prop_map(|(borrowing, body)| Child { borrowing, body });
    let cleanup =
        prop::collection::vec(inner.clone(), 1..=2).prop_map(|body| Cleanup { id: 0, body });
    let grace = prop_oneof![1 => Just(0u64), 4 => positive()];
    (
        prop::option::weighted(0.5, timeout),
        prop::option::weighted(0.15, grace),
        prop::collection::vec(child, 0..=6),
        prop::collection::vec(cleanup, 0..=3),
        seq_of(inner),
    )
        .prop_map(|(cleanup_timeout, grace, children, cleanups, body)| {
            Spec::Nursery(Nursery {
                id: 0,
                cleanup_timeout,
                grace,
                children,
                cleanups,
                body,
            })
        })
}

/// Trees of depth up to 4 with a scope or a nursery at the root, numbered.
pub fn tree() -> impl Strategy<Value = Spec> {
    any_item()
        .prop_recursive(4, 48, 4, |inner| {
            prop_oneof![any_scope(inner.clone()), any_nursery(inner)]
        })
        .prop_filter("structure at the root", |s| {
            matches!(s, Spec::Scope(_) | Spec::Nursery(_))
        })
        .prop_map(super::number)
}
