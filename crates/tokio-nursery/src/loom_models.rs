//! loom models of the cancel tree, the nursery's bookkeeping, the limit's gate and the set of
//! borrowing children
//! (`--cfg loom`). Each model asserts its property on every interleaving loom explores, and that
//! both orders of its race occurred across those interleavings (a model that never races proves
//! nothing).
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test -p tokio-nursery --lib --release loom_models

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;

use crate::cancel::reason::CancelReason;
use crate::cancel::tree::{LiveToken, Node, NodeKind};
use crate::child::borrowed::{BorrowedSet, Incoming};
use crate::nursery::core::Core;
use crate::nursery::gate::{Gate, Permit, Ticket};

/// The preemption bound every model runs with (printed by `preemption_bound_is_printed`).
const PREEMPTION_BOUND: usize = 3;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTION_BOUND);
    builder.check(f);
}

/// Records which side of a race was observed; both must be seen.
struct Orders {
    first: AtomicBool,
    second: AtomicBool,
}

impl Orders {
    const fn new() -> Self {
        Orders {
            first: AtomicBool::new(false),
            second: AtomicBool::new(false),
        }
    }

    fn saw(&self, first: bool) {
        if first {
            self.first.store(true, SeqCst);
        } else {
            self.second.store(true, SeqCst);
        }
    }

    fn assert_both(&self, what: &str) {
        assert!(
            self.first.load(SeqCst) && self.second.load(SeqCst),
            "{what}: only one order of the race was explored"
        );
    }
}

/// Blocks until `check` (which registers the waker, then reads the state) says done, recording
/// in `orders` whether the first check already did. A lost wakeup leaves this blocked forever,
/// which loom reports as a deadlock.
fn wait_until(orders: &Orders, mut check: impl FnMut(&std::task::Waker) -> bool) {
    let mut first_poll = true;
    loom::future::block_on(poll_fn(|cx| {
        let done = check(cx.waker());
        if std::mem::take(&mut first_poll) {
            orders.saw(done);
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
}

fn scope() -> Arc<Node> {
    Node::new(NodeKind::Scope, None)
}

#[test]
fn preemption_bound_is_printed() {
    println!("loom preemption bound: {PREEMPTION_BOUND}");
}

#[test]
fn cancel_racing_child_registration() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let parent = scope();
        parent.attach(None);
        let child = Node::new(NodeKind::Child, None);
        let (p, c) = (parent.clone(), child.clone());
        let attach = loom::thread::spawn(move || {
            c.attach(Some(&p));
            c.is_cancelled()
        });
        parent.cancel(CancelReason::explicit(None));
        let cancelled_at_attach = attach.join().unwrap();
        ORDERS.saw(cancelled_at_attach);
        // Either the attach saw the cancelled parent, or the propagation reached the child.
        assert!(child.is_cancelled());
    });
    ORDERS.assert_both("cancel vs attach");
}

#[test]
fn cancel_racing_child_completion() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let parent = scope();
        parent.attach(None);
        let child = Node::new(NodeKind::Child, None);
        child.attach(Some(&parent));
        let c = child.clone();
        let complete = loom::thread::spawn(move || c.detach());
        parent.cancel(CancelReason::explicit(None));
        let reached = child.is_cancelled();
        complete.join().unwrap();
        ORDERS.saw(reached);
        // A child that finished first is simply no longer reached; nothing panics or blocks.
        assert!(parent.is_cancelled() && child.is_finished());
    });
    ORDERS.assert_both("cancel vs completion");
}

#[test]
fn deadline_racing_explicit_cancel() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let node = scope();
        node.attach(None);
        let n = node.clone();
        let deadline = loom::thread::spawn(move || n.cancel(CancelReason::Deadline));
        let explicit = node.cancel(CancelReason::explicit(None));
        let by_deadline = deadline.join().unwrap();
        // Exactly one reason wins, and it is the one reported.
        assert!(explicit ^ by_deadline);
        assert_eq!(node.public_reason().unwrap().is_deadline(), by_deadline);
        ORDERS.saw(by_deadline);
    });
    ORDERS.assert_both("deadline vs cancel");
}

#[test]
fn shield_toggled_racing_cancel() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let outer = scope();
        outer.attach(None);
        let shielded = scope();
        shielded.attach(Some(&outer));
        let inner = scope();
        inner.attach(Some(&shielded));
        let s = shielded.clone();
        let shield = loom::thread::spawn(move || s.set_shield(true));
        outer.cancel(CancelReason::explicit(None));
        let reached_before_shield = inner.is_cancelled();
        shield.join().unwrap();
        ORDERS.saw(reached_before_shield);
        // Once both are done the shield holds, whichever came first.
        assert!(outer.is_cancelled());
        assert!(!shielded.is_cancelled() && !inner.is_cancelled());
    });
    ORDERS.assert_both("shield vs cancel");
}

/// Invariant 9 of the tree: a delivery (`commit_unwinding` on a node seen cancelled) racing a
/// shield set on the way to the origin. Whichever lands first, once both are done the unwinding
/// that was delivered holds: the delivering node and the scope around it stay cancelled, so the
/// scope cannot be un-cancelled around work already gone.
#[test]
fn delivery_racing_a_shield_on_the_way() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let outer = scope();
        outer.attach(None);
        let middle = scope();
        middle.attach(Some(&outer));
        let inner = scope();
        inner.attach(Some(&middle));
        outer.cancel(CancelReason::explicit(None));
        let i = inner.clone();
        // The delivering side acts only on a cancellation it saw (it is there until the shield
        // lands).
        let delivery = loom::thread::spawn(move || {
            let delivered = i.is_cancelled();
            if delivered {
                i.commit_unwinding();
            }
            delivered
        });
        middle.set_shield(true);
        let delivered = delivery.join().unwrap();
        ORDERS.saw(delivered);
        if delivered {
            assert!(inner.is_cancelled() && middle.is_cancelled());
        } else {
            assert!(!inner.is_cancelled() && !middle.is_cancelled());
        }
        assert!(outer.is_cancelled());
    });
    ORDERS.assert_both("delivery vs shield");
}

#[test]
fn unshield_racing_cancel_delivers() {
    model(|| {
        let outer = scope();
        outer.attach(None);
        let shielded = scope();
        shielded.init_shield(true);
        shielded.attach(Some(&outer));
        let s = shielded.clone();
        let unshield = loom::thread::spawn(move || s.set_shield(false));
        outer.cancel(CancelReason::explicit(None));
        unshield.join().unwrap();
        assert!(
            shielded.is_cancelled(),
            "an unshielded scope under a cancelled one is cancelled"
        );
    });
}

#[test]
fn last_child_exit_wakes_the_parent() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let core: Arc<Core<&'static str>> = Core::new(None, None, None);
        assert!(core.try_join());
        core.leave(); // the body is done; one child remains
        let c = core.clone();
        let child = loom::thread::spawn(move || c.leave());
        wait_until(&ORDERS, |waker| {
            core.register(waker);
            core.is_closed()
        });
        child.join().unwrap();
        assert!(!core.try_join(), "closed is final");
    });
    ORDERS.assert_both("last child vs parent wait");
}

#[test]
fn fail_racing_normal_completion() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let core: Arc<Core<&'static str>> = Core::new(None, None, None);
        let c = core.clone();
        let failer = loom::thread::spawn(move || c.fail_from_handle("late"));
        core.leave();
        let outcome = core.finalize();
        let accepted = failer.join().unwrap().is_ok();
        ORDERS.saw(accepted);
        // An accepted failure is in the outcome; a refused one is not: never lost, never doubled.
        assert_eq!(outcome.errors.contains(&"late"), accepted);
    });
    ORDERS.assert_both("fail vs completion");
}

#[test]
fn orphan_release_racing_a_foreign_drop() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let parent = scope();
        parent.attach(None);
        let dropped = scope();
        dropped.attach(Some(&parent));
        let orphan = LiveToken::new(&dropped);
        let release = loom::thread::spawn(move || drop(orphan));
        // The dropped scope hands its own token on the parent to its node.
        let before = dropped.live();
        dropped.stash_parent_token(LiveToken::new(&parent));
        release.join().unwrap();
        ORDERS.saw(before == 0);
        assert_eq!(
            parent.live(),
            0,
            "the parent waits exactly as long as the orphan runs"
        );
    });
    ORDERS.assert_both("orphan release vs stash");
}

/// A child without a node waits for its group's cancellation through its roster slot (roster
/// invariant 3): the registration racing the group's propagation never loses the wakeup.
#[test]
fn group_cancel_racing_a_lazy_child_wait() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let core: Arc<Core<&'static str>> = Core::new(None, None, None);
        let key = core
            .roster()
            .enroll(None, crate::location::LocationId::NONE);
        let group = core.group().clone();
        let canceller = loom::thread::spawn(move || {
            group.cancel(CancelReason::explicit(None));
        });
        wait_until(&ORDERS, |waker| {
            core.roster().register(key, waker);
            core.roster().lazy_cancelled(key).0
        });
        canceller.join().unwrap();
        core.roster().leave(key);
        core.roster().release(key);
    });
    ORDERS.assert_both("group cancel vs lazy child wait");
}

/// `ChildHandle::cancel` on a child without a node makes its node and cancels it; the child,
/// waiting through its slot, is woken and sees it.
#[test]
fn handle_cancel_racing_a_lazy_child_wait() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let core: Arc<Core<&'static str>> = Core::new(None, None, None);
        let key = core
            .roster()
            .enroll(None, crate::location::LocationId::NONE);
        let roster = core.roster().clone();
        let canceller = loom::thread::spawn(move || {
            roster.cancel(key, CancelReason::explicit(None));
        });
        let mut node: Option<Arc<Node>> = None;
        wait_until(&ORDERS, |waker| match &node {
            Some(node) => {
                node.register_owner(waker);
                node.is_cancelled()
            }
            None => {
                core.roster().register(key, waker);
                let (cancelled, made) = core.roster().lazy_cancelled(key);
                node = made;
                cancelled
            }
        });
        canceller.join().unwrap();
        core.roster().leave(key);
        let (cancelled, reason, finished) = core.roster().status(key);
        assert!(cancelled && reason.is_some_and(|r| r.is_explicit()) && finished);
        core.roster().release(key);
    });
    ORDERS.assert_both("handle cancel vs lazy child wait");
}

/// Waits in line on `ticket` until it is handed a permit (a lost wakeup deadlocks the model).
fn wait_for_permit(orders: &Orders, ticket: &Ticket) -> Permit {
    let mut permit = None;
    wait_until(orders, |waker| {
        let mut cx = std::task::Context::from_waker(waker);
        if let Poll::Ready(p) = ticket.poll_permit(&mut cx) {
            permit = Some(p);
        }
        permit.is_some()
    });
    permit.expect("granted")
}

/// A release racing a spawn that finds no free permit (gate invariant 3): the spawn either
/// takes the released permit or queues and is handed it, never both, never neither.
#[test]
fn limit_release_racing_a_queueing_spawn() {
    static ORDERS: Orders = Orders::new();
    static WOKEN: Orders = Orders::new();
    model(|| {
        let gate = Gate::new(1);
        let held = gate.try_take().expect("one permit");
        let release = loom::thread::spawn(move || drop(held));
        let permit = match gate.enter() {
            Ok(permit) => {
                ORDERS.saw(true);
                permit
            }
            Err(ticket) => {
                ORDERS.saw(false);
                wait_for_permit(&WOKEN, &ticket)
            }
        };
        release.join().unwrap();
        assert_eq!(gate.snapshot(), (0, false), "the one permit is held");
        drop(permit);
        assert_eq!(gate.snapshot(), (1, false), "and freed again");
    });
    ORDERS.assert_both("release vs queueing spawn");
}

/// Two children racing for the one permit of a limit: never both run, and the one that waits
/// is woken when the other's permit frees (gate invariants 2 and 4).
#[test]
fn limit_two_children_never_run_together() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let gate = Gate::new(1);
        let running = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        // Runs one child; whether it got its permit without waiting.
        let child = |gate: Arc<Gate>, running: Arc<loom::sync::atomic::AtomicUsize>| {
            let (permit, at_once) = match gate.enter() {
                Ok(permit) => (permit, true),
                Err(ticket) => (wait_for_permit(&Orders::new(), &ticket), false),
            };
            assert_eq!(running.fetch_add(1, SeqCst), 0, "the limit was exceeded");
            running.fetch_sub(1, SeqCst);
            drop(permit);
            at_once
        };
        let (g, r) = (gate.clone(), running.clone());
        let other = loom::thread::spawn(move || child(g, r));
        ORDERS.saw(child(gate.clone(), running));
        other.join().unwrap();
        assert_eq!(gate.snapshot(), (1, false));
    });
    ORDERS.assert_both("two children vs one permit");
}

/// A waiting child cancelled while the permit it waits for is released (gate invariant 4):
/// the permit is passed on, not lost, and the line is left empty.
#[test]
fn limit_waiter_leaving_racing_a_release() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let gate = Gate::new(1);
        let held = gate.enter().expect("one permit");
        let ticket = gate.enter().expect_err("the limit is reached");
        let release = loom::thread::spawn(move || drop(held));
        ORDERS.saw(ticket.is_granted());
        drop(ticket);
        release.join().unwrap();
        assert_eq!(
            gate.snapshot(),
            (1, false),
            "the permit is free, nobody waits"
        );
    });
    ORDERS.assert_both("waiter leaving vs release");
}

/// Borrowing children pushed while the nursery task polls its set (invariants 1 and 2 of
/// `child/borrowed.rs`): one from another thread, racing the poll, and one from inside a
/// child's poll, which finds the set locked and goes to the overflow. Each is polled in that
/// round or wakes the nursery task; none is lost (a lost one leaves the model blocked).
#[test]
fn borrowed_push_racing_the_nursery_poll() {
    static ORDERS: Orders = Orders::new();
    model(|| {
        let incoming = Incoming::new();
        let mut set = BorrowedSet::new(Arc::clone(&incoming));
        let ran = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let (from, count) = (Arc::downgrade(&incoming), Arc::clone(&ran));
        let pusher = loom::thread::spawn(move || {
            let Some(incoming) = from.upgrade() else {
                return;
            };
            let inner = (Arc::downgrade(&incoming), Arc::clone(&count));
            incoming.push(Box::pin(async move {
                count.fetch_add(1, SeqCst);
                let (from, count) = inner;
                if let Some(incoming) = from.upgrade() {
                    // Inside the set's poll: the set is locked, so this goes to the overflow.
                    incoming.push(Box::pin(async move {
                        count.fetch_add(1, SeqCst);
                    }));
                }
            }));
        });
        wait_until(&ORDERS, |waker| {
            set.poll(&mut std::task::Context::from_waker(waker));
            ran.load(SeqCst) == 2
        });
        pusher.join().unwrap();
    });
    ORDERS.assert_both("borrowed push vs nursery poll");
}
