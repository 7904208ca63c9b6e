//! The interpreter: builds a [`Spec`] with the library, runs it on a current-thread runtime with
//! the paused clock, and records what happened in the model's terms.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_nursery::{fail_after, move_on_after, shield, CancelHandle, CancelScope, NurseryBuilder};

use super::{
    Act, ActKind, Action, Cleanup, Ending, Leaf, ModelError, Nursery, Out, Outcome, PanicId,
    Record, Records, Scope, Spec, Time,
};

/// How long the root may run before it is taken as "never completes". Far beyond any time a
/// generated tree uses; the paused clock gets there at once.
pub const HORIZON: Time = 100_000_000;

type Step = Pin<Box<dyn Future<Output = Result<u32, ModelError>> + Send + 'static>>;

/// The shared log: the runtime's start instant and the records.
#[derive(Clone)]
struct Ctx(Arc<CtxInner>);

struct CtxInner {
    t0: Instant,
    records: Mutex<Records>,
    /// Set once the root is done: drops during runtime shutdown are not part of the run (and
    /// the paused clock is not reachable then).
    closed: AtomicBool,
    /// The scopes some act targets, and their handles once they run.
    targets: BTreeSet<u32>,
    handles: Mutex<BTreeMap<u32, CancelHandle>>,
}

impl Ctx {
    fn new(targets: BTreeSet<u32>) -> Ctx {
        Ctx(Arc::new(CtxInner {
            t0: Instant::now(),
            records: Mutex::new(Records::new()),
            closed: AtomicBool::new(false),
            targets,
            handles: Mutex::new(BTreeMap::new()),
        }))
    }

    fn handle(&self, id: u32) -> CancelHandle {
        self.0.handles.lock().unwrap()[&id].clone()
    }

    fn now(&self) -> Time {
        let ms = Instant::now().duration_since(self.0.t0).as_millis();
        Time::try_from(ms).expect("time fits")
    }

    fn insert(&self, id: u32, record: Record) {
        if !self.0.closed.load(Ordering::SeqCst) {
            let old = self.0.records.lock().unwrap().insert(id, record);
            assert!(old.is_none(), "construct {id} recorded twice");
        }
    }

    /// Ends the record of a leaf or cleanup.
    fn end(&self, id: u32, ending: Ending) {
        if self.0.closed.load(Ordering::SeqCst) {
            return;
        }
        let at = self.now();
        let mut records = self.0.records.lock().unwrap();
        match records.get_mut(&id) {
            Some(Record::Leaf { end, .. } | Record::Cleanup { end, .. }) => {
                assert!(end.is_none(), "construct {id} ended twice");
                *end = Some((at, ending));
            }
            other => panic!("construct {id} ended without starting: {other:?}"),
        }
    }
}

/// Records the start of a leaf or cleanup when created (at its first poll), and its end: through
/// [`finish`](Probe::finish), or on drop (cancelled or timed out; panicking for a cleanup).
struct Probe {
    ctx: Ctx,
    id: u32,
    done: bool,
}

impl Probe {
    fn leaf(ctx: &Ctx, id: u32) -> Probe {
        let start = ctx.now();
        ctx.insert(id, Record::Leaf { start, end: None });
        Probe {
            ctx: ctx.clone(),
            id,
            done: false,
        }
    }

    fn cleanup(ctx: &Ctx, id: u32) -> Probe {
        let start = ctx.now();
        ctx.insert(id, Record::Cleanup { start, end: None });
        Probe {
            ctx: ctx.clone(),
            id,
            done: false,
        }
    }

    fn finish(mut self, ending: Ending) {
        self.done = true;
        self.ctx.end(self.id, ending);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.done {
            let ending = if std::thread::panicking() {
                Ending::Panicked
            } else {
                Ending::Dropped
            };
            self.ctx.end(self.id, ending);
        }
    }
}

fn ms(t: u64) -> Duration {
    Duration::from_millis(t)
}

/// Runs `root` on a fresh current-thread runtime with the paused clock.
pub fn observe(root: &Spec) -> Outcome {
    observe_reporting(root).0
}

/// [`observe`], and if the root hung (had not completed at the [`HORIZON`] of the paused
/// clock), the live tree as it was then.
pub fn observe_reporting(root: &Spec) -> (Outcome, Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let root = root.clone();
    let mut targets = BTreeSet::new();
    collect_targets(std::slice::from_ref(&root), &mut targets);
    let (ctx, out, hung) = rt.block_on(async move {
        let ctx = Ctx::new(targets);
        let fut = AssertUnwindSafe(node(&root, &ctx)).catch_unwind();
        let mut fut = std::pin::pin!(fut);
        let out = match tokio::time::timeout(ms(HORIZON), fut.as_mut()).await {
            Err(_) => {
                // Still alive: the tree as the outermost handle sees it, before it is dropped.
                let first = ctx.0.handles.lock().unwrap().values().next().cloned();
                let tree = first.map(|h| h.render_tree()).unwrap_or_default();
                return (ctx, None, Some(tree));
            }
            Ok(Ok(Ok(v))) => Some((ctx.now(), Out::Ok(v))),
            Ok(Ok(Err(e))) => Some((ctx.now(), Out::Err(e))),
            Ok(Err(payload)) => match payload.downcast::<PanicId>() {
                Ok(id) => Some((ctx.now(), Out::Panic(id.0))),
                Err(payload) => std::panic::resume_unwind(payload),
            },
        };
        (ctx, out, None)
    });
    ctx.0.closed.store(true, Ordering::SeqCst);
    drop(rt);
    let mut records = std::mem::take(&mut *ctx.0.records.lock().unwrap());
    // What happened when the horizon dropped a hanging root is not part of the run.
    records.retain(|_, r| match r {
        Record::Scope { at, .. } | Record::Nursery { at, .. } => *at < HORIZON,
        Record::Leaf { start, .. } | Record::Cleanup { start, .. } => *start < HORIZON,
        Record::Act { at } => *at < HORIZON,
    });
    for r in records.values_mut() {
        if let Record::Leaf { end, .. } | Record::Cleanup { end, .. } = r {
            if end.is_some_and(|(at, _)| at >= HORIZON) {
                *end = None;
            }
        }
    }
    (Outcome { root: out, records }, hung)
}

fn collect_targets(items: &[Spec], out: &mut BTreeSet<u32>) {
    for item in items {
        match item {
            Spec::Leaf(_) => {}
            Spec::Act(a) => out.extend(a.target),
            Spec::Scope(s) => collect_targets(&s.body, out),
            Spec::Nursery(n) => {
                collect_targets(&n.body, out);
                for c in &n.children {
                    collect_targets(&c.body, out);
                }
                for c in &n.cleanups {
                    collect_targets(&c.body, out);
                }
            }
        }
    }
}

fn node(spec: &Spec, ctx: &Ctx) -> Step {
    match spec {
        Spec::Leaf(leaf) => run_leaf(leaf.clone(), ctx.clone()),
        Spec::Scope(scope) => run_scope(scope.clone(), ctx.clone()),
        Spec::Nursery(nursery) => run_nursery(nursery.clone(), ctx.clone()),
        Spec::Act(act) => run_act(act.clone(), ctx.clone()),
    }
}

/// An act: no await between what came before it and the handle call.
fn run_act(act: Act, ctx: Ctx) -> Step {
    Box::pin(async move {
        ctx.insert(act.id, Record::Act { at: ctx.now() });
        if let Some(target) = act.target {
            let handle = ctx.handle(target);
            match act.kind {
                ActKind::Shield(on) => handle.set_shield(on),
                ActKind::Cancel => handle.cancel(),
            }
        }
        Ok(act.id)
    })
}

/// `a.await?; b.await?; …`, building each item only when it is reached.
fn seq(items: Vec<Spec>, ctx: Ctx) -> Step {
    Box::pin(async move {
        let mut value = 0;
        for item in &items {
            value = node(item, &ctx).await?;
        }
        Ok(value)
    })
}

fn run_leaf(leaf: Leaf, ctx: Ctx) -> Step {
    Box::pin(async move {
        let probe = Probe::leaf(&ctx, leaf.id);
        let delay = match leaf.action {
            Action::Finish(d) | Action::Fail(d) | Action::Panic(d) => d,
            Action::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        };
        match (leaf.aware, delay) {
            (true, 0) => tokio_nursery::checkpoint().await,
            (true, d) => tokio_nursery::sleep(ms(d)).await,
            (false, 0) => {}
            (false, d) => tokio::time::sleep(ms(d)).await,
        }
        probe.finish(Ending::Done);
        match leaf.action {
            Action::Finish(_) => Ok(leaf.id),
            Action::Fail(_) => Err(ModelError::Leaf(leaf.id)),
            // `resume_unwind` skips the panic hook: no noise on stderr.
            Action::Panic(_) => std::panic::resume_unwind(Box::new(PanicId(leaf.id))),
            Action::Hang => unreachable!(),
        }
    })
}

fn run_scope(scope: Scope, ctx: Ctx) -> Step {
    Box::pin(async move {
        let body = seq(scope.body.clone(), ctx.clone());
        let plain = scope.cancel_at.is_none()
            && scope.grace.is_none()
            && !ctx.0.targets.contains(&scope.id);
        // The convenience functions where they fit, `CancelScope` otherwise.
        let out = match (scope.deadline, scope.shield) {
            (Some(d), false) if plain && scope.fail => fail_after(ms(d), body).await.ok(),
            (Some(d), false) if plain => move_on_after(ms(d), body).await,
            (None, true) if plain => Some(shield(body).await),
            _ => {
                let mut s = CancelScope::new().with_shield(scope.shield);
                if let Some(d) = scope.deadline {
                    s = s.with_timeout(ms(d));
                }
                if let Some(g) = scope.grace {
                    s = s.with_grace(ms(g));
                }
                if ctx.0.targets.contains(&scope.id) {
                    let h = s.handle();
                    ctx.0.handles.lock().unwrap().insert(scope.id, h);
                }
                if let Some(c) = scope.cancel_at {
                    let h = s.handle();
                    tokio::spawn(async move {
                        tokio::time::sleep(ms(c)).await;
                        h.cancel();
                    });
                }
                s.run(body).await
            }
        };
        ctx.insert(
            scope.id,
            Record::Scope {
                at: ctx.now(),
                out: out.clone(),
            },
        );
        match out {
            Some(value) => value,
            None if scope.fail => Err(ModelError::Elapsed(scope.id)),
            None => Ok(0),
        }
    })
}

fn run_nursery(spec: Nursery, ctx: Ctx) -> Step {
    Box::pin(async move {
        let mut builder = NurseryBuilder::new();
        if let Some(t) = spec.cleanup_timeout {
            builder = builder.cleanup_timeout(ms(t));
        }
        if let Some(g) = spec.grace {
            builder = builder.grace(ms(g));
        }
        let id = spec.id;
        let inner = ctx.clone();
        let out = builder
            .run_all(move |n| async move {
                for child in &spec.children {
                    let fut = seq(child.body.clone(), inner.clone());
                    let fut = async move { fut.await.map(|_| ()) };
                    if child.borrowing {
                        n.spawn_borrowing(fut);
                    } else {
                        n.spawn(fut);
                    }
                }
                for cleanup in &spec.cleanups {
                    n.defer(run_cleanup(cleanup.clone(), inner.clone()));
                }
                seq(spec.body.clone(), inner).await
            })
            .await;
        let at = ctx.now();
        match out {
            Ok(v) => {
                ctx.insert(id, Record::Nursery { at, out: Ok(v) });
                Ok(v)
            }
            Err(errors) => {
                let all = errors.all().to_vec();
                ctx.insert(id, Record::Nursery { at, out: Err(all) });
                Err(errors.into_first())
            }
        }
    })
}

async fn run_cleanup(cleanup: Cleanup, ctx: Ctx) -> Result<(), ModelError> {
    let probe = Probe::cleanup(&ctx, cleanup.id);
    let out = seq(cleanup.body, ctx.clone()).await;
    probe.finish(match out {
        Ok(_) => Ending::Done,
        Err(_) => Ending::Failed,
    });
    out.map(|_| ())
}
