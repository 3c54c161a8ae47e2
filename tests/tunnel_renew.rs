//! Heartbeats renew a session's claims (issue 11): an agent session whose claims another
//! session took over is ended at its next heartbeat (the agent reconnects), while the session
//! that holds them keeps going.

mod support;

use std::net::SocketAddr;

use wsgate::{
    secret::Secret,
    session::{OpenedStream, messages},
    wire::{self, Control, Expose, Service},
};

use support::{
    Gateway, STEP,
    raw_agent::{self, RawSession},
};

/// Agent `name`'s session, having registered private service `db` (granted).
async fn holding_db(gateway: SocketAddr, name: &str) -> RawSession {
    let (mut raw, welcome) =
        raw_agent::hello(gateway, "127.0.0.1", "t0ken", name, wire::VERSION, |_| {}).await;
    assert!(matches!(welcome, Control::Welcome { .. }), "{welcome:?}");
    let db = Service {
        name: "db".into(),
        local: "tcp://127.0.0.1:5432".into(),
        expose: Expose::Private(Secret::new("s3cret")),
    };
    let register = Control::Register {
        services: vec![db],
        egress: None,
    };
    messages::write_frame(&mut raw.control, &register)
        .await
        .unwrap();
    let answer = next_frame(&mut raw.control).await;
    assert!(
        matches!(&answer, Some(Control::Registered { .. })),
        "{answer:?}"
    );
    raw
}

/// The next control frame within [`STEP`]; `None` once the gateway ended the stream.
async fn next_frame(control: &mut OpenedStream) -> Option<Control> {
    tokio::time::timeout(STEP, messages::read_frame(control))
        .await
        .expect("the gateway said nothing in time")
        .ok()
        .flatten()
}

/// Sends heartbeat `n`; asserts the gateway answers it.
async fn heartbeat(raw: &mut RawSession, n: u64) {
    messages::write_frame(&mut raw.control, &Control::Ping(n))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut raw.control).await, Some(Control::Pong(n)));
}

#[tokio::test]
async fn a_session_whose_claims_were_taken_over_ends_at_its_next_heartbeat() {
    let gateway = Gateway::start("[agents]\ntokens = [\"t0ken\"]\n").await;
    let mut stale = holding_db(gateway.addr, "box").await;
    // Renewed while it holds them: its next heartbeat (below) is still answered.
    heartbeat(&mut stale, 1).await;
    // The same agent reconnects and takes `db` over: the stale session holds nothing now.
    let mut current = holding_db(gateway.addr, "box").await;
    heartbeat(&mut current, 1).await;
    heartbeat(&mut stale, 2).await;
    assert_eq!(
        next_frame(&mut stale.control).await,
        None,
        "the session whose claims were taken over was not ended"
    );
    heartbeat(&mut current, 2).await;
}
