//! Collecting on a deadline: the values that finished, in order, a reason for the rest, which are
//! cancelled at the deadline; the call returns once they have unwound, and the nursery does not
//! fail because of it.

use std::time::Duration;

use tokio::time::{sleep, Instant};
use tokio_nursery::{
    collect_after, collect_at, nursery, shield, supervisor, CancelReason, Collected,
};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn snapshot_at_the_deadline_in_spawn_order() {
    let start = Instant::now();
    let out = nursery(|n| async move {
        let children: Vec<_> = [300u64, 10, 200, 50]
            .into_iter()
            .map(|ms| {
                n.spawn_returning(async move {
                    sleep(Duration::from_millis(ms)).await;
                    Ok::<_, String>(ms)
                })
            })
            .collect();
        let got = collect_at(children, start + Duration::from_millis(100)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        Ok(got)
    })
    .await;
    let got = out.unwrap();
    assert_eq!(got[1], Collected::Value(10));
    assert_eq!(got[3], Collected::Value(50));
    for late in [&got[0], &got[2]] {
        assert_eq!(
            late,
            &Collected::TimedOut {
                reason: CancelReason::Deadline,
                late: None
            }
        );
    }
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn returns_early_when_everything_ended() {
    let start = Instant::now();
    nursery(|n| async move {
        let a = n.spawn_returning(async { Ok::<_, String>(1) });
        let b = n.spawn_returning(async {
            sleep(Duration::from_millis(5)).await;
            Ok(2)
        });
        let got = collect_after([a, b], Duration::from_secs(60)).await;
        assert_eq!(got, [Collected::Value(1), Collected::Value(2)]);
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_child_that_ended_without_a_value_says_why() {
    let out = supervisor(|n| async move {
        let failed = n.spawn_returning(async { Err::<u8, _>("no value") });
        let cancelled = n.spawn_returning(std::future::pending::<Result<u8, &str>>());
        cancelled.cancel();
        let fine = n.spawn_returning(async { Ok(9) });
        let got = collect_after([failed, cancelled, fine], Duration::from_secs(1)).await;
        assert!(matches!(&got[0], Collected::Ended(e) if e.is_failed()));
        assert!(matches!(&got[1], Collected::Ended(e) if e.is_cancelled()));
        assert_eq!(got[2], Collected::Value(9));
        Ok(())
    })
    .await;
    // The child's error still goes to its nursery.
    assert_eq!(out.unwrap_err().into_vec(), ["no value"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn it_returns_once_the_cancelled_children_have_unwound() {
    let start = Instant::now();
    nursery(|n| async move {
        // Shielded work cannot be interrupted: the child unwinds 50 ms after the deadline and
        // still produces its value, kept as `late`.
        let slow = n.spawn_returning(async {
            sleep(Duration::from_millis(20)).await;
            shield(sleep(Duration::from_millis(80))).await;
            Ok::<_, String>("late")
        });
        let got = collect_after([slow], Duration::from_millis(50)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(
            got,
            [Collected::TimedOut {
                reason: CancelReason::Deadline,
                late: Some("late")
            }]
        );
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn not_finishing_in_time_is_not_a_failure() {
    let out = nursery(|n| async move {
        let slow = n.spawn_returning(async {
            sleep(Duration::from_secs(60)).await;
            Ok::<_, String>(())
        });
        let got = collect_after([slow], Duration::from_millis(1)).await;
        assert!(got[0].is_timed_out());
        Ok("body value")
    })
    .await;
    assert_eq!(out.unwrap(), "body value");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_handle_without_a_value_is_left_alone() {
    let start = Instant::now();
    nursery(|n| async move {
        let plain = n.spawn(async {
            sleep(Duration::from_millis(30)).await;
            Ok::<_, String>(())
        });
        let got = collect_after([plain.clone()], Duration::from_millis(10)).await;
        assert_eq!(got, [Collected::NotJoinable]);
        assert!(!plain.is_cancelled());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(30));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_deadline_in_the_past_takes_the_snapshot_at_once() {
    nursery(|n| async move {
        let done = n.spawn_returning(async { Ok::<_, String>(1) });
        tokio::task::yield_now().await; // let it finish
        let pending = n.spawn_returning(std::future::pending::<Result<i32, String>>());
        let past = Instant::now() - Duration::from_millis(1);
        let got = collect_at([done, pending], past).await;
        assert_eq!(got[0], Collected::Value(1));
        assert!(got[1].is_timed_out());
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_values_racing_the_deadline_are_either_collected_or_timed_out() {
    for round in 0..20u64 {
        let out = nursery(|n| async move {
            let children: Vec<_> = (0..32u64)
                .map(|i| {
                    n.spawn_returning(async move {
                        for _ in 0..(i + round) % 7 {
                            tokio::task::yield_now().await;
                        }
                        Ok::<_, String>(i)
                    })
                })
                .collect();
            Ok(collect_after(children, Duration::from_micros(50)).await)
        });
        let got = tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .expect("hang guard")
            .unwrap();
        assert_eq!(got.len(), 32);
        for (i, entry) in got.into_iter().enumerate() {
            match entry {
                Collected::Value(v) => assert_eq!(v, i as u64),
                Collected::TimedOut { late, .. } => {
                    assert!(late.is_none() || late == Some(i as u64))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
