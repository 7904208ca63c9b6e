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
    let up = prop_oneof![3 => Just(0u8), 3 => Just(1), 1 => Just(2), 1 => Just(3)];
    (kind, up).prop_map(|(kind, up)| {
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

/// `items`, sometimes preceded by one or two acts: what a nursery body or a cleanup does first
/// runs in the poll that spawns or delivers, which is where a cancellation and a shield change
/// meet (the shield hang, DESIGN §4).
pub fn acts_first(
    items: impl Strategy<Value = Vec<Spec>> + Clone,
) -> impl Strategy<Value = Vec<Spec>> + Clone {
    let acts = prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::collection::vec(any_act(), 1..=1),
        1 => prop::collection::vec(any_act(), 2..=2),
    ];
    (acts, items).prop_map(|(mut acts, items)| {
        acts.extend(items);
        acts
    })
}

pub fn seq_of(
    inner: impl Strategy<Value = Spec> + Clone,
) -> impl Strategy<Value = Vec<Spec>> + Clone {
    prop::collection::vec(inner, 0..=3)
}

pub fn any_scope(
    inner: impl Strategy<Value = Spec> + Clone,
) -> impl Strategy<Value = Spec> + Clone {
    scope_around(seq_of(inner))
}

/// A scope with random options around a body drawn from `body`.
pub fn scope_around(
    body: impl Strategy<Value = Vec<Spec>> + Clone,
) -> impl Strategy<Value = Spec> + Clone {
    let deadline = prop_oneof![1 => Just(0u64), 9 => positive()];
    let grace = prop_oneof![1 => Just(0u64), 4 => positive()];
    (
        prop::option::weighted(0.6, deadline),
        prop::option::weighted(0.3, positive()),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, grace),
        any::<bool>(),
        body,
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
    let cleanup = acts_first(prop::collection::vec(inner.clone(), 1..=2))
        .prop_map(|body| Cleanup { id: 0, body });
    let grace = prop_oneof![1 => Just(0u64), 4 => positive()];
    (
        prop::option::weighted(0.5, timeout),
        prop::option::weighted(0.15, grace),
        prop::collection::vec(child, 0..=6),
        prop::collection::vec(cleanup, 0..=3),
        acts_first(seq_of(inner)),
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

/// Random subtrees of depth up to `depth`.
fn subtree(depth: u32, size: u32) -> impl Strategy<Value = Spec> + Clone {
    any_item().prop_recursive(depth, size, 4, |inner| {
        prop_oneof![any_scope(inner.clone()), any_nursery(inner)]
    })
}

/// Two scopes around a nursery whose body begins with a `cancel()` and whose first cleanup (the
/// last deferred) begins with a shield change, on enclosing scopes drawn at random, and
/// everything else random: the shape in which a cancellation and a shield change meet in one
/// poll (the shield hang, DESIGN §4). Random trees draw it about 3 times in 100 000. Without
/// grace periods, which the model does not combine with shield changes.
pub fn meeting(
    inner: impl Strategy<Value = Spec> + Clone + 'static,
) -> impl Strategy<Value = Spec> + Clone {
    let first = |kind: BoxedStrategy<ActKind>| {
        (kind, 0u8..=3, prop::collection::vec(any_act(), 0..=1)).prop_map(|(kind, up, more)| {
            let act = Spec::Act(Act {
                id: 0,
                kind,
                up,
                target: None,
            });
            std::iter::once(act).chain(more).collect::<Vec<_>>()
        })
    };
    let then = |head: BoxedStrategy<Vec<Spec>>, items: BoxedStrategy<Vec<Spec>>| {
        (head, items).prop_map(|(mut head, items)| {
            head.extend(items);
            head
        })
    };
    let shield = prop::bool::weighted(0.7).prop_map(ActKind::Shield).boxed();
    let child = (prop::bool::weighted(0.5), seq_of(inner.clone()))
        .prop_map(|(borrowing, body)| Child { borrowing, body });
    let children = prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec(child, 1..=2),
    ];
    let last = then(first(shield).boxed(), seq_of(inner.clone()).boxed());
    // Something after the `cancel()`, so that the body is still there to be dropped.
    let rest = prop::collection::vec(inner.clone(), 1..=3).boxed();
    let body = then(first(Just(ActKind::Cancel).boxed()).boxed(), rest);
    let nursery = (
        prop::option::weighted(0.3, prop_oneof![Just(30u64), Just(100)]),
        children,
        prop::collection::vec(inner.clone(), 0..=1),
        last,
        body,
    )
        .prop_map(|(cleanup_timeout, children, early, last, body)| {
            let mut cleanups: Vec<Cleanup> = early
                .into_iter()
                .map(|s| Cleanup {
                    id: 0,
                    body: vec![s],
                })
                .collect();
            cleanups.push(Cleanup { id: 0, body: last });
            Spec::Nursery(Nursery {
                id: 0,
                cleanup_timeout,
                grace: None,
                children,
                cleanups,
                body,
            })
        });
    let around = |s: BoxedStrategy<Spec>, inner: BoxedStrategy<Spec>| {
        (
            prop::collection::vec(inner.clone(), 0..=1),
            s,
            seq_of(inner),
        )
            .prop_map(|(mut before, s, after)| {
                before.push(s);
                before.extend(after);
                before
            })
    };
    let inner = inner.boxed();
    let middle = scope_around(around(nursery.boxed(), inner.clone()));
    scope_around(around(middle.boxed(), inner)).prop_map(without_grace)
}

/// `spec` with every grace period removed.
fn without_grace(spec: Spec) -> Spec {
    let seq = |items: Vec<Spec>| items.into_iter().map(without_grace).collect();
    match spec {
        Spec::Leaf(_) | Spec::Act(_) => spec,
        Spec::Scope(s) => Spec::Scope(Scope {
            grace: None,
            body: seq(s.body),
            ..s
        }),
        Spec::Nursery(n) => Spec::Nursery(Nursery {
            grace: None,
            children: n
                .children
                .into_iter()
                .map(|c| Child {
                    body: seq(c.body),
                    ..c
                })
                .collect(),
            cleanups: n
                .cleanups
                .into_iter()
                .map(|c| Cleanup {
                    body: seq(c.body),
                    ..c
                })
                .collect(),
            body: seq(n.body),
            ..n
        }),
    }
}

/// Trees of depth up to 4 with a scope or a nursery at the root, numbered; one in four is built
/// around [`meeting`].
pub fn tree() -> impl Strategy<Value = Spec> {
    let random = subtree(4, 48).prop_filter("structure at the root", |s| {
        matches!(s, Spec::Scope(_) | Spec::Nursery(_))
    });
    prop_oneof![3 => random, 1 => meeting(subtree(1, 6))].prop_map(super::number)
}
