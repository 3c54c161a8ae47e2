//! Stream budgets: the credit timeout, the control stream's own account, a charge to every
//! budget or to none.

use super::*;

/// Polls `probe` with a write that stays pending; what it makes of it.
fn wait(probe: &mut Probe) -> Poll<std::io::Result<()>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    probe.observe(&mut cx, Poll::Pending)
}

fn write_through(probe: &mut Probe) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(probe.observe(&mut cx, Poll::Ready(Ok(()))).is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_stream_waiting_past_the_credit_timeout_fails_and_starves_an_idle_session() {
    let watch = CreditWatch::new(Some(Duration::from_secs(10)));
    let (mut stuck, mut other) = (Probe::new(&watch), Probe::new(&watch));
    assert!(wait(&mut stuck).is_pending());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(watch.starved_for(), Duration::from_secs(5));
    // The peer sends on another stream: alive, the session's clock starts again.
    other.observe_read();
    tokio::time::advance(Duration::from_secs(5)).await;
    match wait(&mut stuck) {
        Poll::Ready(Err(error)) => assert_eq!(error.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("the stuck write must fail at the timeout: {other:?}"),
    }
    let starved = watch.starved();
    tokio::pin!(starved);
    assert!(
        futures_util::poll!(starved.as_mut()).is_pending(),
        "data moved 5 s ago: only the stream is reset"
    );
    assert_eq!(watch.blocked.load(Ordering::Relaxed), 0);
    // Now nothing moves at all for the timeout: the session is starved.
    assert!(wait(&mut other).is_pending());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(wait(&mut other).is_ready());
    assert!(futures_util::poll!(starved.as_mut()).is_ready());
}

#[tokio::test(start_paused = true)]
async fn writes_going_through_and_the_control_stream_keep_their_own_account() {
    let watch = CreditWatch::new(Some(Duration::from_secs(10)));
    let (mut stuck, mut flowing) = (Probe::new(&watch), Probe::new(&watch));
    let mut control = Probe::new(&watch);
    control.detach();
    assert!(wait(&mut stuck).is_pending());
    tokio::time::advance(Duration::from_secs(4)).await;
    write_through(&mut control); // heartbeats prove nothing about data
    assert_eq!(watch.starved_for(), Duration::from_secs(4));
    write_through(&mut flowing);
    assert_eq!(watch.starved_for(), Duration::ZERO);
    drop(stuck);
    assert_eq!(
        watch.blocked.load(Ordering::Relaxed),
        0,
        "a dropped stream waits no more"
    );
    assert!(wait(&mut control).is_pending());
    assert_eq!(
        watch.blocked.load(Ordering::Relaxed),
        0,
        "the control stream is not counted"
    );
}

#[test]
fn a_stream_is_charged_to_every_budget_or_to_none() {
    let token = Budget::new("token", STREAM_WINDOW_BYTES);
    let process = Budget::new("process", 10 * STREAM_WINDOW_BYTES);
    let budget = StreamBudget::new(vec![token.clone(), process.clone()]);
    let first = budget.charge(STREAM_WINDOW_BYTES).expect("room in both");
    assert!(
        budget.charge(STREAM_WINDOW_BYTES).is_none(),
        "the token is full"
    );
    assert_eq!(
        process.used(),
        STREAM_WINDOW_BYTES,
        "nothing left charged elsewhere"
    );
    drop(first);
    assert_eq!((token.used(), process.used()), (0, 0));
}
