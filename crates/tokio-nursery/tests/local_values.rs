//! `Local<T>`: context values inherited by every child started where they are bound (DESIGN §7).
//!
//! Each inheritance path (spawn, spawn_borrowing, start, spawn_blocking, cleanups, handles,
//! `with_locals`), the at-spawn-time rule, isolation between parent, child and siblings, and the
//! unbound cases. Ordering comes from channels and barriers, never from sleeping.

mod support;

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use support::*;
use tokio::sync::{mpsc, oneshot};
use tokio_nursery::{nursery, with_locals, Local, LocalUnbound, Locals, Nursery, NurseryHandle};

static REQUEST_ID: Local<String> = Local::named("request_id");
static BUDGET: Local<u32> = Local::new();
static DEPTH: Local<usize> = Local::named("depth");

type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn record(seen: &Seen, who: &'static str) {
    seen.lock().unwrap().push((who, REQUEST_ID.get()));
}

fn sorted(seen: &Seen) -> Vec<(&'static str, Option<String>)> {
    let mut all = seen.lock().unwrap().clone();
    all.sort();
    all
}

fn id(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[tokio::test]
async fn unbound_reads_give_none_or_a_typed_error() {
    assert_eq!(REQUEST_ID.get(), None);
    assert_eq!(REQUEST_ID.with(|v| v.len()), None);
    assert!(!REQUEST_ID.is_bound());
    let err: LocalUnbound = REQUEST_ID.try_get().unwrap_err();
    assert_eq!(err.name(), Some("request_id"));
    assert_eq!(err.type_name(), std::any::type_name::<String>());
    assert_eq!(err.to_string(), "no value bound for the Local `request_id`");
    let err = BUDGET.try_with(|b| *b).unwrap_err();
    assert_eq!(err.name(), None);
    assert_eq!(
        err.to_string(),
        "no value bound for the Local of type `u32`"
    );
    // Inside a nursery child, with another key bound, still unbound.
    let out = BUDGET
        .scope(3, async {
            nursery(|n| async move {
                let child = n.spawn_returning(async {
                    Ok::<_, TestError>((REQUEST_ID.try_get().is_err(), BUDGET.get()))
                });
                assert_eq!(child.join().await, Ok((true, Some(3))));
                Ok(())
            })
            .await
        })
        .await;
    assert_eq!(out, Ok(()));
}

#[tokio::test]
async fn nested_rebinding_shadows_and_restores() {
    let out = REQUEST_ID
        .scope("outer".into(), async {
            let before = REQUEST_ID.get();
            let inner = REQUEST_ID
                .scope("inner".into(), async {
                    tokio::task::yield_now().await;
                    (REQUEST_ID.get(), BUDGET.get())
                })
                .await;
            let sync = REQUEST_ID.sync_scope("sync".into(), || {
                REQUEST_ID.sync_scope("sync2".into(), || REQUEST_ID.get())
            });
            (before, inner, sync, REQUEST_ID.get())
        })
        .await;
    assert_eq!(
        out,
        (id("outer"), (id("inner"), None), id("sync2"), id("outer"))
    );
    assert_eq!(REQUEST_ID.get(), None);
    // Two keys bound together, rebinding one keeps the other.
    let both = BUDGET.sync_scope(10, || {
        REQUEST_ID.sync_scope("r".into(), || {
            BUDGET.sync_scope(9, || (REQUEST_ID.get(), BUDGET.get()))
        })
    });
    assert_eq!(both, (id("r"), Some(9)));
}

#[tokio::test]
async fn every_kind_of_child_inherits_at_any_depth() {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let out = REQUEST_ID
        .scope("req-1".into(), async move {
            nursery(|n: Nursery<'_, TestError>| async move {
                record(&s, "body");
                let s1 = s.clone();
                n.spawn(async move {
                    record(&s1, "spawn");
                    // A grandchild in a nested nursery inside a spawned child.
                    let s2 = s1.clone();
                    nursery(|n2| async move {
                        n2.spawn(async move {
                            record(&s2, "spawn/spawn");
                            Ok::<_, TestError>(())
                        });
                        Ok(())
                    })
                    .await
                });
                let s3 = s.clone();
                n.spawn_borrowing(async move {
                    record(&s3, "borrowing");
                    Ok(())
                });
                let s4 = s.clone();
                let started = n
                    .start(|st| async move {
                        record(&s4, "start");
                        st.started(REQUEST_ID.get());
                        Ok(())
                    })
                    .await;
                assert_eq!(started.ok(), Some(id("req-1")));
                let s5 = s.clone();
                n.spawn_blocking(move || {
                    record(&s5, "blocking");
                    Ok(())
                });
                Ok(())
            })
            .await
        })
        .await;
    assert_eq!(out, Ok(()));
    let all = sorted(&seen);
    assert_eq!(
        all,
        vec![
            ("blocking", id("req-1")),
            ("body", id("req-1")),
            ("borrowing", id("req-1")),
            ("spawn", id("req-1")),
            ("spawn/spawn", id("req-1")),
            ("start", id("req-1")),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn children_see_the_value_at_spawn_time() {
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let out = nursery(|n: Nursery<'_, TestError>| async move {
        // Spawned inside a binding that ends before the child runs.
        let early = REQUEST_ID.sync_scope("first".into(), || {
            n.spawn_returning(async move {
                go_rx.await.unwrap();
                Ok(REQUEST_ID.get())
            })
        });
        let unbound = n.spawn_returning(async { Ok(REQUEST_ID.get()) });
        let later = REQUEST_ID
            .scope("second".into(), async {
                n.spawn_returning(async { Ok(REQUEST_ID.get()) })
            })
            .await;
        // The body now binds a third value; the early child reads only after this.
        let third = REQUEST_ID
            .scope("third".into(), async {
                go_tx.send(()).unwrap();
                early.join().await
            })
            .await;
        assert_eq!(third, Ok(id("first")));
        assert_eq!(unbound.join().await, Ok(None));
        assert_eq!(later.join().await, Ok(id("second")));
        Ok(())
    })
    .await;
    assert_eq!(out, Ok(()));
}

#[tokio::test]
async fn rebinding_in_a_child_never_reaches_the_parent_or_siblings() {
    let (rebound_tx, rebound_rx) = oneshot::channel::<()>();
    let out = REQUEST_ID
        .scope("parent".into(), async move {
            nursery(|n: Nursery<'_, TestError>| async move {
                let rebinder = n.spawn_returning(REQUEST_ID.scope("child".into(), async move {
                    // Its own children see its binding.
                    let grandchild = nursery(|n2| async move {
                        let g = n2.spawn_returning(async { Ok(REQUEST_ID.get()) });
                        g.join().await.map_err(|_| TestError("join"))
                    })
                    .await?;
                    rebound_tx.send(()).unwrap();
                    Ok((REQUEST_ID.get(), grandchild))
                }));
                // Wait until the child has rebound and is done with it.
                rebound_rx.await.unwrap();
                let sibling = n.spawn_returning(async { Ok(REQUEST_ID.get()) });
                assert_eq!(REQUEST_ID.get(), id("parent"));
                assert_eq!(rebinder.join().await, Ok((id("child"), id("child"))));
                assert_eq!(sibling.join().await, Ok(id("parent")));
                Ok(REQUEST_ID.get())
            })
            .await
        })
        .await;
    assert_eq!(out, Ok(id("parent")));
}

#[tokio::test(start_paused = true)]
async fn cleanups_see_the_values_where_they_were_deferred() {
    let seen: Seen = Arc::default();
    let (s, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let out = REQUEST_ID
        .scope("opened".into(), async move {
            nursery(|n: Nursery<'_, TestError>| async move {
                n.defer(async move {
                    record(&s, "defer in body");
                    // A cleanup may await: its binding stays across polls.
                    tokio::time::sleep(ms(5)).await;
                    record(&s, "defer in body, after a sleep");
                    Ok(())
                });
                REQUEST_ID.sync_scope("rebound".into(), || {
                    n.defer(async move {
                        record(&s2, "defer while rebound");
                        Ok(())
                    });
                });
                let h = n.handle();
                n.spawn(REQUEST_ID.scope("child".into(), async move {
                    h.defer(async move {
                        record(&s3, "defer from a child");
                        Ok(())
                    })
                    .unwrap();
                    Ok(())
                }));
                Ok(())
            })
            .await
        })
        .await;
    assert_eq!(out, Ok(()));
    assert_eq!(
        sorted(&seen),
        vec![
            ("defer from a child", id("child")),
            ("defer in body", id("opened")),
            ("defer in body, after a sleep", id("opened")),
            ("defer while rebound", id("rebound")),
        ]
    );
}

#[tokio::test]
async fn with_resource_release_sees_the_values() {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let out = REQUEST_ID
        .scope("res".into(), async move {
            tokio_nursery::with_resource(
                async { Ok::<_, TestError>(()) },
                |_r| async { Ok(REQUEST_ID.get()) },
                move |_r| async move {
                    record(&s, "release");
                    Ok(())
                },
            )
            .await
        })
        .await;
    assert_eq!(out, Ok(id("res")));
    assert_eq!(sorted(&seen), vec![("release", id("res"))]);
}

#[test]
fn spawn_blocking_reads_on_its_own_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body_thread = thread::current().id();
    let (thread_id, value) = rt.block_on(REQUEST_ID.scope("blk".into(), async {
        nursery(|n: Nursery<'_, TestError>| async move {
            let (tx, rx) = std::sync::mpsc::channel();
            n.spawn_blocking(move || {
                tx.send((thread::current().id(), REQUEST_ID.get())).unwrap();
                Ok(())
            });
            Ok(rx)
        })
        .await
        .unwrap()
        .recv()
        .unwrap()
    }));
    assert_ne!(thread_id, body_thread);
    assert_eq!(value, id("blk"));
}

#[test]
fn spawned_children_read_on_other_workers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let out = rt.block_on(async {
        tokio::spawn(REQUEST_ID.scope("mt".into(), async {
            nursery(|n: Nursery<'_, TestError>| async move {
                // Both children block their worker until the other arrives, so they run on two
                // different workers at once.
                let barrier = Arc::new(Barrier::new(2));
                let children: Vec<_> = (0..2)
                    .map(|_| {
                        let barrier = barrier.clone();
                        n.spawn_returning(async move {
                            barrier.wait();
                            Ok((thread::current().id(), REQUEST_ID.get()))
                        })
                    })
                    .collect();
                let mut results = Vec::new();
                for child in children {
                    results.push(child.join().await.unwrap());
                }
                Ok(results)
            })
            .await
        }))
        .await
        .unwrap()
    });
    let results = out.unwrap();
    assert_ne!(
        results[0].0, results[1].0,
        "the children ran on two workers"
    );
    assert!(results.iter().all(|(_, v)| *v == id("mt")));
}

#[tokio::test]
async fn with_locals_carries_the_values_into_a_plain_tokio_spawn() {
    let out = REQUEST_ID
        .scope("carried".into(), async {
            BUDGET
                .scope(5, async {
                    let plain = tokio::spawn(async { (REQUEST_ID.get(), BUDGET.get()) });
                    let wrapped =
                        tokio::spawn(with_locals(async { (REQUEST_ID.get(), BUDGET.get()) }));
                    let captured = Locals::capture();
                    assert!(!captured.is_empty());
                    let later = tokio::spawn(captured.clone().scope(async {
                        tokio::task::yield_now().await;
                        REQUEST_ID.get()
                    }));
                    let on_thread =
                        thread::spawn(move || captured.sync_scope(|| BUDGET.get())).join();
                    (
                        plain.await.unwrap(),
                        wrapped.await.unwrap(),
                        later.await.unwrap(),
                        on_thread.unwrap(),
                    )
                })
                .await
        })
        .await;
    assert_eq!(
        out,
        (
            (None, None),
            (id("carried"), Some(5)),
            id("carried"),
            Some(5)
        )
    );
    // An empty set hides what is bound.
    let hidden = REQUEST_ID.sync_scope("x".into(), || {
        Locals::empty().sync_scope(|| REQUEST_ID.get())
    });
    assert_eq!(hidden, None);
}

/// Spawns through `h` and reports what the child saw.
async fn child_via_handle(h: &NurseryHandle<TestError>) -> Option<String> {
    let (tx, rx) = oneshot::channel();
    h.spawn(async move {
        tx.send(REQUEST_ID.get()).unwrap();
        Ok(())
    })
    .unwrap();
    rx.await.unwrap()
}

#[tokio::test]
async fn a_handle_used_outside_the_tree_gives_the_values_where_the_nursery_was_opened() {
    let (handle_tx, handle_rx) = oneshot::channel::<NurseryHandle<TestError>>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let outside = async move {
        let h = handle_rx.await.unwrap();
        // A plain tokio task, outside every binding.
        let plain = tokio::spawn({
            let h = h.clone();
            async move { child_via_handle(&h).await }
        })
        .await
        .unwrap();
        // Another nursery's tree, with its own binding.
        let other_tree = REQUEST_ID
            .scope("other tree".into(), async {
                nursery(|n2: Nursery<'_, TestError>| {
                    let h = h.clone();
                    async move {
                        let child =
                            n2.spawn_returning(async move { Ok(child_via_handle(&h).await) });
                        child.join().await.map_err(|_| TestError("join"))
                    }
                })
                .await
                .unwrap()
            })
            .await;
        // An OS thread.
        let (tx, rx) = oneshot::channel();
        let h2 = h.clone();
        thread::spawn(move || {
            h2.spawn(async move {
                tx.send(REQUEST_ID.get()).unwrap();
                Ok(())
            })
            .unwrap();
        })
        .join()
        .unwrap();
        let os_thread = rx.await.unwrap();
        // A start and a cleanup from outside.
        let started = h
            .start(|st| async move {
                st.started(REQUEST_ID.get());
                Ok(())
            })
            .await
            .unwrap();
        h.defer(async move {
            record(&s, "handle defer from outside");
            Ok(())
        })
        .unwrap();
        done_tx.send(()).unwrap();
        (plain, other_tree, os_thread, started)
    };
    let inside = REQUEST_ID.scope("opened".into(), async move {
        nursery(|n: Nursery<'_, TestError>| async move {
            handle_tx.send(n.handle()).unwrap();
            let h = n.handle();
            // From inside the tree, a handle carries the spawner's current values.
            let rebound = n.spawn_returning(REQUEST_ID.scope("inside".into(), async move {
                Ok(child_via_handle(&h).await)
            }));
            assert_eq!(rebound.join().await, Ok(id("inside")));
            done_rx.await.unwrap();
            Ok(())
        })
        .await
    });
    let (from_outside, from_inside) = tokio::join!(outside, inside);
    assert_eq!(from_inside, Ok(()));
    assert_eq!(
        from_outside,
        (id("opened"), id("opened"), id("opened"), id("opened"))
    );
    assert_eq!(
        sorted(&seen),
        vec![("handle defer from outside", id("opened"))]
    );
}

#[tokio::test]
async fn a_handle_start_from_inside_the_tree_carries_the_spawners_values() {
    let out = REQUEST_ID
        .scope("opened".into(), async {
            nursery(|n: Nursery<'_, TestError>| async move {
                let h = n.handle();
                let v = REQUEST_ID
                    .scope("body rebound".into(), async move {
                        h.start(|st| async move {
                            st.started(REQUEST_ID.get());
                            Ok(())
                        })
                        .await
                    })
                    .await;
                Ok(v.ok())
            })
            .await
        })
        .await;
    assert_eq!(out, Ok(Some(id("body rebound"))));
}

struct ReadOnDrop(Arc<Mutex<Option<Option<String>>>>);

impl Drop for ReadOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(REQUEST_ID.get());
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_dropped_by_cancellation_reads_its_values_in_drop() {
    let read = Arc::new(Mutex::new(None));
    let r = read.clone();
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let out = nursery(|n: Nursery<'_, TestError>| async move {
        REQUEST_ID.sync_scope("dropped".into(), || {
            n.spawn(async move {
                let _guard = ReadOnDrop(r);
                ready_tx.send(()).unwrap();
                std::future::pending::<()>().await;
                Ok(())
            })
        });
        ready_rx.await.unwrap();
        n.cancel();
        Ok(())
    })
    .await;
    assert_eq!(out, Ok(()));
    assert_eq!(*read.lock().unwrap(), Some(id("dropped")));
    // A scope's future, dropped before its first poll, still sees its value in `Drop`.
    let read = Arc::new(Mutex::new(None));
    let guard = ReadOnDrop(read.clone());
    let fut = REQUEST_ID.scope("never polled".into(), async move {
        let _guard = guard;
    });
    drop(fut);
    assert_eq!(*read.lock().unwrap(), Some(id("never polled")));
}

#[tokio::test]
async fn a_value_is_dropped_once_nothing_holds_it() {
    let probe = DropProbe::new();
    static GUARD: Local<Arc<DropGuard>> = Local::new();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (observed_tx, mut observed_rx) = mpsc::unbounded_channel::<bool>();
    let p = probe.clone();
    let out = nursery(|n: Nursery<'_, TestError>| async move {
        GUARD
            .scope(Arc::new(p.guard()), async {
                n.spawn(async move {
                    release_rx.await.unwrap();
                    observed_tx.send(GUARD.is_bound()).unwrap();
                    Ok(())
                });
            })
            .await;
        // The scope has ended, but the child still holds the binding.
        assert!(!p.dropped());
        release_tx.send(()).unwrap();
        Ok(())
    })
    .await;
    assert_eq!(out, Ok(()));
    assert_eq!(observed_rx.recv().await, Some(true));
    assert_eq!(probe.count(), 1);
}

#[test]
fn a_very_long_chain_of_bindings_drops_without_recursion() {
    let mut set = Locals::empty();
    for depth in 0..300_000 {
        set = set.sync_scope(|| DEPTH.sync_scope(depth, Locals::capture));
    }
    assert_eq!(set.sync_scope(|| DEPTH.get()), Some(299_999));
    drop(set);
    assert_eq!(DEPTH.get(), None);
}

#[test]
fn nurseries_on_many_workers_keep_their_own_values() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let wrong = rt.block_on(async {
        let mut tasks = Vec::new();
        for request in 0..64u32 {
            tasks.push(tokio::spawn(BUDGET.scope(request, async move {
                nursery(|n: Nursery<'_, TestError>| async move {
                    let wrong = Arc::new(Mutex::new(0usize));
                    for child in 0..16u32 {
                        let wrong = wrong.clone();
                        let h = n.handle();
                        n.spawn(async move {
                            for _ in 0..4 {
                                tokio::task::yield_now().await;
                                if BUDGET.get() != Some(request) {
                                    *wrong.lock().unwrap() += 1;
                                }
                            }
                            // Odd children rebind for their own child; even ones do not.
                            let expect = if child % 2 == 1 {
                                request + 1000
                            } else {
                                request
                            };
                            let w = wrong.clone();
                            let spawn = move || {
                                h.spawn(async move {
                                    tokio::task::yield_now().await;
                                    if BUDGET.get() != Some(expect) {
                                        *w.lock().unwrap() += 1;
                                    }
                                    Ok(())
                                })
                                .unwrap();
                            };
                            if child % 2 == 1 {
                                BUDGET.sync_scope(expect, spawn);
                            } else {
                                spawn();
                            }
                            Ok(())
                        });
                    }
                    Ok(wrong)
                })
                .await
            })));
        }
        let mut wrong = 0;
        for task in tasks {
            wrong += *task.await.unwrap().unwrap().lock().unwrap();
        }
        wrong
    });
    assert_eq!(wrong, 0);
}

#[test]
fn a_child_spawned_with_nothing_bound_sees_nothing_where_its_poller_has_values() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The runtime's tasks are polled inside `block_on`, inside this binding.
    let (borrowing, spawned, body) = REQUEST_ID.sync_scope("poller".into(), || {
        rt.block_on(async {
            nursery(|n: Nursery<'_, TestError>| async move {
                let (b_tx, b_rx) = oneshot::channel();
                let (s_tx, s_rx) = oneshot::channel();
                Locals::empty().sync_scope(|| {
                    n.spawn_borrowing(async move {
                        b_tx.send(REQUEST_ID.get()).unwrap();
                        Ok(())
                    });
                    n.spawn(async move {
                        s_tx.send(REQUEST_ID.get()).unwrap();
                        Ok(())
                    });
                });
                Ok((b_rx.await.unwrap(), s_rx.await.unwrap(), REQUEST_ID.get()))
            })
            .await
            .unwrap()
        })
    });
    assert_eq!((borrowing, spawned), (None, None));
    assert_eq!(body, id("poller"));
    assert_eq!(REQUEST_ID.get(), None);
}

#[tokio::test(start_paused = true)]
async fn a_cleanup_run_by_the_detached_finisher_sees_its_values() {
    let (tx, rx) = oneshot::channel();
    let fut = REQUEST_ID.scope(
        "foreign drop".into(),
        nursery(|n: Nursery<'_, TestError>| async move {
            n.defer(async move {
                tx.send(REQUEST_ID.get()).unwrap();
                Ok(())
            });
            std::future::pending::<()>().await;
            Ok(())
        }),
    );
    // `timeout` drops the running nursery: its cleanup runs later, in a detached task.
    assert!(tokio::time::timeout(ms(10), fut).await.is_err());
    assert_eq!(rx.await.unwrap(), id("foreign drop"));
}
