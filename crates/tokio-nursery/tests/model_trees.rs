//! Randomized trees against an executable model.
//!
//! A generator (`model/gen.rs`) builds random trees of scopes, nurseries, scripted leaves and
//! acts that shield, unshield or cancel an enclosing scope at any point (depth up to 4, fan-out
//! up to 6; one tree in four built around a cancel and a shield change meeting in one poll, the
//! shape of the shield hang, DESIGN §4; see `model/mod.rs` for the language and what is
//! excluded), runs each on tokio's paused clock and compares everything observed — the root's
//! outcome and time, every scope's and nursery's return value and time, every leaf's and
//! cleanup's start, end and how it ended — with what the reference model predicts from
//! DESIGN.md's rules.
//!
//! The number of cases is `NURSERY_MODEL_CASES` (default [`DEFAULT_CASES`]); `model_case_count`
//! prints it. Failing cases are kept by proptest in `proptest-regressions/model_trees.txt` and
//! replayed first on later runs; each distinct bug found is also a named test below. A root
//! that has not completed at the paused clock's horizon when the model says it completes fails
//! as a hang, with the live tree.

mod model;

use model::build::*;
use model::gen::tree;
use model::{Action, Nursery, Scope, Spec};
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
/// ambiguous, or one of the known disagreements (nothing is compared then). A root that has not
/// completed at the paused clock's horizon while the model says it completes is reported as a
/// hang, with the live tree.
fn check(spec: &Spec) -> Result<bool, TestCaseError> {
    let Ok(expected) = model::predict(spec) else {
        return Ok(false);
    };
    let (observed, hung) = model::run::observe_reporting(spec);
    if let (Some(tree), Some((at, _))) = (&hung, &expected.root) {
        return Err(TestCaseError::fail(format!(
            "hang: the root had not completed at {} ms of the paused clock; the model says it \
             completes at {at} ms\nlive tree:\n{tree}\nobserved: {observed:#?}\nmodel: {expected:#?}",
            model::run::HORIZON
        )));
    }
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

/// Found by the search (the model was wrong): scope I's own `cancel()` comes from a timer task at
/// 60 ms, the instant its unwinding from outside ends. The nursery's body cancels O at 0 ms and is
/// dropped (the delivery: I is unwinding); its cleanup shields I, too late to stop the unwinding,
/// and runs until its timeout at 60 ms. §2 decides who absorbs when the unwinding is over: I, if
/// it was cancelled in its own right by then and is shielded (as with a timer at 50 ms), else O.
/// Which comes first at 60 ms, the timer task's `cancel()` or the nursery's task ending the
/// unwinding, is a race between tasks that DESIGN.md does not order (§4 orders a deadline only
/// against a wake-up in the same task). The model used to say I absorbs; it now sets the case
/// aside, and either outcome is accepted from the library.
#[test]
fn a_timer_cancel_at_the_instant_a_shielded_unwinding_ends_is_ambiguous() {
    let tree = |cancel_at| {
        let Spec::Nursery(n) = nursery(
            vec![],
            vec![vec![set_shield(0, true), finish(100)]],
            vec![cancel(1), finish(10)],
        ) else {
            unreachable!()
        };
        let n = Nursery {
            cleanup_timeout: Some(60),
            ..n
        };
        let inner = Scope {
            cancel_at: Some(cancel_at),
            ..scope_of(vec![Spec::Nursery(n)])
        };
        model::number(scope(vec![Spec::Scope(inner)]))
    };
    let root = tree(60);
    assert!(model::predict(&root).is_err());
    let observed = model::run::observe(&root);
    assert_eq!(observed.root, Some((60, model::Out::Ok(0))));
    let absorbed = |id| {
        matches!(
            observed.records.get(&id),
            Some(model::Record::Scope { at: 60, out: None })
        )
    };
    // Ids: O 1, I 2. I absorbs (and O returns its value), or I parks and O absorbs.
    let i_absorbs = absorbed(2)
        && matches!(
            observed.records.get(&1),
            Some(model::Record::Scope {
                at: 60,
                out: Some(Ok(0))
            })
        );
    let o_absorbs = absorbed(1) && !observed.records.contains_key(&2);
    assert!(i_absorbs || o_absorbs, "{observed:#?}");
    // A timer 10 ms earlier settles it: I is cancelled in its own right and shielded by the end.
    let out = assert_matches_model(tree(50));
    assert!(matches!(
        out.records.get(&2),
        Some(model::Record::Scope { at: 60, out: None })
    ));
}

// ---------------------------------------------------------------------------------------------
// Acts: shield changes and cancels at arbitrary points (DESIGN.md §4).
// ---------------------------------------------------------------------------------------------

/// The shield hang (DESIGN §4) as a tree: scope O around scope I around a nursery whose body cancels O and
/// sleeps, with a cleanup that shields I and sleeps 50 ms. The cleanup runs in the poll that
/// delivered O's cancellation (the body was dropped by it), so the shield comes too late: I
/// never returns, O absorbs at 50 ms. Before unwinding was committed at delivery, both hung.
#[test]
fn acts_a_shield_set_in_the_poll_that_delivers_a_cancel_does_not_stop_it() {
    let Spec::Nursery(n) = nursery(
        vec![],
        vec![vec![set_shield(0, true), finish(50)]],
        vec![cancel(1), finish(10_000)],
    ) else {
        unreachable!()
    };
    let inner = scope(vec![Spec::Nursery(n)]);
    let out = assert_matches_model(scope(vec![inner]));
    assert_eq!(out.root, Some((50, model::Out::Ok(0))));
    assert!(!out.records.contains_key(&2), "I never returns");
}

/// The shield lands in the same synchronous stretch as the `cancel()`, before anything acted on
/// it: it holds, I completes, and O returns I's value (Rule 1).
#[test]
fn acts_a_shield_set_before_the_cancel_is_delivered_holds() {
    let inner = scope(vec![cancel(1), set_shield(0, true), finish(100)]);
    let out = assert_matches_model(scope(vec![inner]));
    // Ids: O 1, I 2, the acts 3 and 4, the leaf 5.
    assert_eq!(out.root, Some((100, model::Out::Ok(5))));
    assert!(matches!(
        out.records.get(&2),
        Some(model::Record::Scope {
            at: 100,
            out: Some(Ok(5))
        })
    ));
}

/// Unshielding inside a cancelled enclosing scope cancels at once: O is cancelled at 10 ms
/// while I is shielded; I unshields itself at 50 ms and is unwound then.
#[test]
fn acts_unshielding_inside_a_cancelled_scope_cancels_at_once() {
    let inner = Scope {
        shield: true,
        ..scope_of(vec![finish(50), set_shield(0, false), finish(100)])
    };
    let outer = Scope {
        cancel_at: Some(10),
        ..scope_of(vec![Spec::Scope(inner)])
    };
    let out = assert_matches_model(Spec::Scope(outer));
    assert_eq!(out.root, Some((50, model::Out::Ok(0))));
    assert!(!out.records.contains_key(&2), "I is parked, never returns");
}

/// A scope cancelled through its parent, and shielded by a cleanup once the unwinding began,
/// does not absorb; a scope that also cancelled itself and is shielded at the end does (§2: the
/// outermost cancelled scope below the nearest shield).
#[test]
fn acts_a_scope_shielded_while_unwinding_its_own_cancel_absorbs() {
    let Spec::Nursery(n) = nursery(
        vec![],
        vec![vec![cancel(0), set_shield(0, true), finish(30)]],
        vec![cancel(1), hang()],
    ) else {
        unreachable!()
    };
    let out = assert_matches_model(scope(vec![scope(vec![Spec::Nursery(n)])]));
    // I (id 2) cancelled itself while unwinding and is shielded by then: it absorbs, and O
    // (cancelled too) gets I's cancelled outcome as its body's value (Rule 1).
    assert!(matches!(
        out.records.get(&2),
        Some(model::Record::Scope { at: 30, out: None })
    ));
    assert_eq!(out.root, Some((30, model::Out::Ok(0))));
}

/// Found by the extended generator (with and without the commit at delivery): left open by
/// DESIGN.md, so the model sets it aside. A sibling's failure at 10 ms cancels scope 4 from
/// outside and drops the inner nursery's body; its cleanup shields scope 4 at 20 ms, the instant
/// scope 4's own deadline passes. §4 says the shield does not stop the unwinding, but not whether
/// a deadline passing during the unwinding makes the scope cancelled in its own right (and so,
/// shielded by the end, the one that absorbs). The model said yes (`None` at 20 ms); the library
/// never looks at the deadline once unwinding, so scope 4 is parked and never returns.
#[test]
fn a_deadline_passing_while_a_scope_unwinds_is_left_open() {
    let Spec::Nursery(inner) = nursery(
        vec![],
        vec![vec![finish(10), set_shield(0, true)]],
        vec![finish(20)],
    ) else {
        unreachable!()
    };
    let timed = Scope {
        deadline: Some(20),
        ..scope_of(vec![Spec::Nursery(inner)])
    };
    let root = model::number(nursery(
        vec![vec![scope(vec![fail(10)])], vec![Spec::Scope(timed)]],
        vec![],
        vec![],
    ));
    assert!(model::predict(&root).is_err());
    let observed = model::run::observe(&root);
    assert_eq!(
        observed.root,
        Some((20, model::Out::Err(model::ModelError::Leaf(3))))
    );
    assert!(!observed.records.contains_key(&4), "scope 4 is parked");
}

/// Found by the generator on the code before unwinding was committed at delivery (proptest's
/// shrunk case; it hung there, the tree stuck at `scope [cancelling] └─ scope [running]`): the
/// nursery's body cancels the outer scope and then enters an empty scope, which parks (Rule 3:
/// that is the delivery); the nursery's only cleanup, run in that same poll, shields the inner
/// scope. The shield comes too late: the outer scope absorbs at once.
#[test]
fn found_a_shield_set_by_a_cleanup_in_the_delivering_poll_does_not_hang() {
    let Spec::Nursery(n) = nursery(
        vec![],
        vec![vec![set_shield(0, true)]],
        vec![cancel(1), scope(vec![])],
    ) else {
        unreachable!()
    };
    let out = assert_matches_model(scope(vec![scope(vec![Spec::Nursery(n)])]));
    assert_eq!(out.root, Some((0, model::Out::Ok(0))));
    assert!(
        !out.records.contains_key(&2),
        "the inner scope never returns"
    );
}

/// The same, shrunk by another run on the code before the fix: the body's sleep is what is
/// dropped (the delivery).
#[test]
fn found_a_shield_set_after_the_body_was_dropped_does_not_hang() {
    let Spec::Nursery(n) = nursery(
        vec![],
        vec![vec![set_shield(0, true)]],
        vec![cancel(1), finish(10)],
    ) else {
        unreachable!()
    };
    let out = assert_matches_model(scope(vec![scope(vec![Spec::Nursery(n)])]));
    assert_eq!(out.root, Some((0, model::Out::Ok(0))));
    assert!(matches!(
        out.records.get(&7),
        Some(model::Record::Leaf {
            start: 0,
            end: Some((0, model::Ending::Dropped))
        })
    ));
}
