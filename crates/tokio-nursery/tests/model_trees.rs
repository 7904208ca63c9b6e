//! Randomized trees against an executable model (issue 4, item 2).
//!
//! A generator builds random trees of scopes, nurseries and scripted leaves (depth up to 4,
//! fan-out up to 6; see `model/mod.rs` for the language and what is excluded), runs each on
//! tokio's paused clock and compares everything observed — the root's outcome and time, every
//! scope's and nursery's return value and time, every leaf's and cleanup's start, end and how it
//! ended — with what the reference model predicts from DESIGN.md's rules.
//!
//! The number of cases is `NURSERY_MODEL_CASES` (default [`DEFAULT_CASES`]); `model_case_count`
//! prints it. Failing cases are kept by proptest in `proptest-regressions/model_trees.txt` and
//! replayed first on later runs; each distinct bug found is also a named test below.

mod model;

use model::build::*;
use model::{Action, Child, Cleanup, Leaf, Nursery, Scope, Spec};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Cases per run unless `NURSERY_MODEL_CASES` says otherwise.
const DEFAULT_CASES: u32 = 5_000;

fn cases() -> u32 {
    match std::env::var("NURSERY_MODEL_CASES") {
        Ok(v) => v
            .trim()
            .parse()
            .expect("NURSERY_MODEL_CASES must be a number of cases"),
        Err(_) => DEFAULT_CASES,
    }
}

/// Runs `spec` on the library and compares with the model. `false` if the model finds the case
/// ambiguous, or one of the known disagreements (nothing is compared then).
fn check(spec: &Spec) -> Result<bool, TestCaseError> {
    let Ok(expected) = model::predict(spec) else {
        return Ok(false);
    };
    let observed = model::run::observe(spec);
    prop_assert_eq!(&observed, &expected, "observed (left) vs model (right)");
    Ok(true)
}

/// `check` for hand-written trees: numbers the tree, insists it is not ambiguous, compares.
fn assert_matches_model(spec: Spec) -> model::Outcome {
    let spec = model::number(spec);
    let expected = model::predict(&spec).expect("a deterministic case");
    let observed = model::run::observe(&spec);
    assert_eq!(
        observed, expected,
        "observed (left) vs model (right) for {spec:#?}"
    );
    observed
}

// ---------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------

/// A duration in ms: sometimes 0, often a multiple of 10 (so that events coincide and the
/// same-instant rules are exercised), otherwise anything up to 300.
fn duration() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        1 => Just(0u64),
        4 => (1u64..=30).prop_map(|k| k * 10),
        5 => 1u64..=300,
    ]
}

fn positive() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        4 => (1u64..=30).prop_map(|k| k * 10),
        5 => 1u64..=300,
    ]
}

fn any_leaf() -> impl Strategy<Value = Spec> + Clone {
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

fn seq_of(inner: impl Strategy<Value = Spec> + Clone) -> impl Strategy<Value = Vec<Spec>> + Clone {
    prop::collection::vec(inner, 0..=3)
}

fn any_scope(inner: impl Strategy<Value = Spec> + Clone) -> impl Strategy<Value = Spec> + Clone {
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

fn any_nursery(inner: impl Strategy<Value = Spec> + Clone) -> impl Strategy<Value = Spec> + Clone {
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
fn tree() -> impl Strategy<Value = Spec> {
    any_leaf()
        .prop_recursive(4, 48, 4, |inner| {
            prop_oneof![any_scope(inner.clone()), any_nursery(inner)]
        })
        .prop_filter("structure at the root", |s| !matches!(s, Spec::Leaf(_)))
        .prop_map(model::number)
}

fn config() -> ProptestConfig {
    let cases = cases();
    ProptestConfig {
        cases,
        max_global_rejects: cases.saturating_mul(20),
        max_local_rejects: cases.saturating_mul(20),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model_trees.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The library agrees with the model on every generated tree the model finds deterministic.
    #[test]
    fn random_trees_match_the_model(spec in tree()) {
        let compared = check(&spec)?;
        prop_assume!(compared, "ambiguous, or a known disagreement: not compared");
    }
}

/// Prints the number of model-based cases a run checks (CI runs this with `--nocapture`).
#[test]
fn model_case_count() {
    println!("model-based cases: {}", cases());
}

// ---------------------------------------------------------------------------------------------
// Named cases: every distinct disagreement found, and a few anchors for the rules the model
// implements. Each is checked against the strict model.
// ---------------------------------------------------------------------------------------------

/// Found by the search (the model was wrong): a cleanup's timeout cannot drop a cleanup while a
/// shielded scope inside it still runs (§2, "structure unwinds"), so a hanging shield inside a
/// cleanup keeps the nursery open for ever.
#[test]
fn a_hanging_shield_inside_a_cleanup_outlives_the_cleanup_timeout() {
    let shielded = Scope {
        shield: true,
        ..scope_of(vec![hang()])
    };
    let Spec::Nursery(n) = nursery(vec![vec![]], vec![vec![Spec::Scope(shielded)]], vec![]) else {
        unreachable!()
    };
    let out = assert_matches_model(Spec::Nursery(Nursery {
        cleanup_timeout: Some(30),
        ..n
    }));
    assert_eq!(out.root, None);
}

/// Known disagreement (library): a shielded grace scope's drain is cut short by an enclosing
/// deadline. DESIGN.md §4: shields "block enclosing cancellation"; the effective deadline of a
/// shielded node is its own (§2, scope tree); the drain ends at +grace or when "an enclosing
/// scope whose own bound expires first cancels hard" — which an enclosing scope cannot do to a
/// shielded one. Here the inner scope cancels itself at 10 ms and drains until 210 ms; its body
/// finishes at 150 ms, so both scopes return the body's value at 150 ms. The library ends the
/// drain at the outer deadline (100 ms): the body is dropped and the inner scope returns `None`.
#[test]
fn known_a_shielded_drain_is_not_bounded_by_enclosing_deadlines() {
    let inner = Scope {
        shield: true,
        deadline: Some(10),
        grace: Some(200),
        ..scope_of(vec![finish(150)])
    };
    let outer = Scope {
        deadline: Some(100),
        ..scope_of(vec![Spec::Scope(inner)])
    };
    let out = assert_matches_model(Spec::Scope(outer));
    assert_eq!(out.root, Some((150, model::Out::Ok(3))));
}

/// Known disagreement (library): a grace nursery first polled inside an already-cancelled scope
/// runs its body (it drains). DESIGN.md §2 rule 3: such a construct "does not poll its body and
/// does not complete"; §4: "a grace scope cancelled before its first poll follows rule 3 (nothing
/// to drain: its body is never polled)". Here the outer scope is cancelled at 10 ms while a
/// shield runs until 20 ms; the grace nursery reached after it must be dropped unpolled and the
/// outer scope return `None` at 20 ms. The library starts a drain instead: the nursery's body
/// runs, completes at 25 ms, and the outer scope returns its value (rule 1).
#[test]
fn known_a_grace_nursery_started_inside_a_cancelled_scope_never_polls_its_body() {
    let Spec::Nursery(n) = nursery(vec![], vec![], vec![finish(5)]) else {
        unreachable!()
    };
    let late = Spec::Nursery(Nursery {
        grace: Some(50),
        ..n
    });
    let shielded = Scope {
        shield: true,
        ..scope_of(vec![finish(20)])
    };
    let outer = Scope {
        cancel_at: Some(10),
        ..scope_of(vec![Spec::Scope(shielded), late])
    };
    let out = assert_matches_model(Spec::Scope(outer));
    assert_eq!(out.root, Some((20, model::Out::Ok(0))));
}

/// §4: a deadline and a wake-up of the body at the same instant: the deadline wins.
#[test]
fn anchor_the_deadline_wins_against_a_wake_up_at_the_same_instant() {
    let s = Scope {
        deadline: Some(100),
        fail: true,
        ..scope_of(vec![finish(100)])
    };
    let out = assert_matches_model(Spec::Scope(s));
    assert_eq!(
        out.root,
        Some((100, model::Out::Err(model::ModelError::Elapsed(1))))
    );
}

/// Rules 1 and 2: an error found while unwinding (in a shield) reaches the caller of the
/// cancelled scope, after the cleanup ran.
#[test]
fn anchor_an_error_found_while_unwinding_reaches_the_caller() {
    let shielded = Scope {
        shield: true,
        ..scope_of(vec![finish(80), fail(20)])
    };
    let s = Scope {
        cancel_at: Some(50),
        ..scope_of(vec![nursery(
            vec![vec![Spec::Scope(shielded)]],
            vec![vec![finish(5)]],
            vec![hang()],
        )])
    };
    let out = assert_matches_model(Spec::Scope(s));
    // The failing leaf is id 5 (scope 1, nursery 2, shield 3, leaves 4 and 5).
    assert_eq!(
        out.root,
        Some((105, model::Out::Err(model::ModelError::Leaf(5))))
    );
}

/// §2: exactly one scope absorbs, decided when the unwinding ends: the inner scope's deadline
/// starts the unwinding, the outer scope is cancelled while a cleanup still runs, so the outer
/// one absorbs.
#[test]
fn anchor_the_outermost_cancelled_scope_absorbs_at_the_end_of_the_unwinding() {
    let inner = Scope {
        deadline: Some(50),
        ..scope_of(vec![nursery(vec![], vec![vec![finish(30)]], vec![hang()])])
    };
    let outer = Scope {
        cancel_at: Some(60),
        ..scope_of(vec![Spec::Scope(inner)])
    };
    let out = assert_matches_model(Spec::Scope(outer));
    assert_eq!(out.root, Some((80, model::Out::Ok(0))));
    assert!(
        !out.records.contains_key(&2),
        "the inner scope never returns"
    );
}

/// §3.2: the first error wins, later ones (a shielded child, a cleanup) are kept in order, and a
/// later panic beats them all.
#[test]
fn anchor_failures_in_order_and_a_panic_beats_them() {
    let late = |leaf| {
        Spec::Scope(Scope {
            shield: true,
            ..scope_of(vec![leaf])
        })
    };
    let errors = nursery(
        vec![vec![fail(10)], vec![late(fail(30))]],
        vec![vec![fail(5)]],
        vec![hang()],
    );
    let out = assert_matches_model(errors);
    assert!(matches!(
        out.records.get(&1),
        Some(model::Record::Nursery { at: 35, out: Err(all) }) if all.len() == 3
    ));
    let panics = nursery(
        vec![vec![fail(10)], vec![late(panic(30))]],
        vec![vec![fail(5)]],
        vec![hang()],
    );
    let out = assert_matches_model(panics);
    assert!(matches!(out.root, Some((35, model::Out::Panic(_)))));
}

/// Found by the search (the model was wrong): a `checkpoint` yields once and resumes in the
/// same instant, so when a sibling fails at that instant (here: panics right after its own
/// checkpoint) whether the body's checkpoint completes is a race between the two tasks. The
/// model used to predict "dropped"; it now sets such cases aside.
#[test]
fn a_checkpoint_racing_a_failure_in_the_same_instant_is_ambiguous() {
    let inner = nursery(
        vec![vec![aware(Action::Panic(0))]],
        vec![],
        vec![aware(Action::Finish(0))],
    );
    let spec = model::number(nursery(vec![vec![inner]], vec![], vec![]));
    assert!(model::predict(&spec).is_err());
}
