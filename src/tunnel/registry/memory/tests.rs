//! The in-memory registry on its own: refusals name the holder, the same agent takes its stale
//! claims over, releases free what they name, and every change is announced.

use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;

use super::{ConfiguredRoute, Memory};
use crate::{
    config::AgentSettings,
    matching::HostPattern,
    matching::claim_rules::{Nesting, PathRefusal},
    secret::Secret,
    tunnel::registry::{
        Change, Claim, ClaimError, ClaimRequest, Claimed, GatewayRule, Holder, Registry,
    },
    wire::{Expose, Service},
};

fn registry() -> Memory {
    let settings = AgentSettings {
        path: "/_wsgate/agent".into(),
        tokens: vec![Secret::new("a"), Secret::new("b")],
        limits: vec![Default::default(), Default::default()],
        token_file: None,
        hosts: vec![HostPattern::parse("*.tunnel.test").unwrap()],
        paths: None,
        gateway_names: Vec::new(),
        heartbeat_timeout: Duration::from_secs(30),
        remote_ports: Some(20000..=20010),
        remote_bind: std::net::Ipv4Addr::LOCALHOST.into(),
        egress: None,
    };
    let configured = vec![ConfiguredRoute {
        name: "vnc".into(),
        host: None,
        path: "/vnc".into(),
    }];
    Memory::new(&settings, Vec::new(), configured)
}

fn holder(session: u64, agent: &str, token: usize) -> Holder {
    Holder {
        session,
        agent: agent.into(),
        token,
    }
}

fn service(name: &str, expose: Expose) -> Service {
    Service {
        name: name.into(),
        local: "http://127.0.0.1:3000".into(),
        expose,
    }
}

async fn claim(registry: &Memory, who: Holder, service: Service) -> Result<String, ClaimError> {
    let request = ClaimRequest::new(who, service);
    registry.claim(&request).await.map(|granted| granted.url)
}

#[tokio::test]
async fn a_route_held_by_another_agent_is_refused_naming_the_holder() {
    let registry = registry();
    let app = service("app", Expose::Path("/app".into()));
    assert_eq!(
        claim(&registry, holder(1, "office", 0), app.clone())
            .await
            .unwrap(),
        "/app"
    );
    let refused = claim(&registry, holder(2, "mallory", 0), app)
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "/app is held by agent \"office\"");
    let inside = service("deep", Expose::Path("/app/deep".into()));
    let refused = claim(&registry, holder(2, "mallory", 0), inside)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "/app/deep nests inside /app, held by agent \"office\""
    );
    let configured = service("vnc", Expose::Path("/vnc".into()));
    let refused = claim(&registry, holder(2, "mallory", 0), configured).await;
    assert!(
        matches!(refused, Err(ClaimError::Gateway(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_same_agent_and_token_take_their_stale_claims_over() {
    let registry = registry();
    let app = service("app", Expose::Host("app.tunnel.test".into()));
    claim(&registry, holder(1, "office", 0), app.clone())
        .await
        .unwrap();
    // Another token under the same name is someone else.
    let refused = claim(&registry, holder(2, "office", 1), app.clone()).await;
    assert!(
        matches!(refused, Err(ClaimError::Held { .. })),
        "{refused:?}"
    );
    let request = ClaimRequest::new(holder(3, "office", 0), app);
    let granted = registry.claim(&request).await.unwrap();
    assert_eq!(granted.replaced, [1]);
    assert_eq!(granted.url, "app.tunnel.test");
}

#[tokio::test]
async fn release_frees_what_it_names_and_changes_are_announced() {
    let registry = registry();
    let mut changes = registry.subscribe();
    let secret = Secret::new("s3cret");
    let private = service("ssh", Expose::Private(secret));
    claim(&registry, holder(1, "office", 0), private)
        .await
        .unwrap();
    let port = Service {
        local: "tcp://127.0.0.1:22".into(),
        ..service("ssh-port", Expose::Port(20001))
    };
    let url = claim(&registry, holder(1, "office", 0), port.clone())
        .await
        .unwrap();
    assert_eq!(url, "tcp://127.0.0.1:20001");
    let found = registry.lookup_private("ssh", "s3cret").await.unwrap();
    assert_eq!(found, Some(holder(1, "office", 0)));
    assert_eq!(registry.lookup_private("ssh", "wrong").await.unwrap(), None);

    registry.release(1, Some("ssh")).await.unwrap();
    assert_eq!(
        registry.lookup_private("ssh", "s3cret").await.unwrap(),
        None
    );
    let refused = claim(&registry, holder(2, "mallory", 0), port.clone()).await;
    assert_eq!(
        refused.unwrap_err().to_string(),
        "port 20001 is held by agent \"office\""
    );
    registry.release(1, None).await.unwrap();
    claim(&registry, holder(2, "mallory", 0), port)
        .await
        .unwrap();

    let claimed = |session, service: &str, claimed| Change::Claimed {
        holder: holder(session, if session == 1 { "office" } else { "mallory" }, 0),
        service: service.into(),
        claimed,
    };
    let expected = [
        claimed(1, "ssh", Claimed::Private),
        claimed(1, "ssh-port", Claimed::Port(20001)),
        Change::Released {
            session: 1,
            service: Some("ssh".into()),
        },
        Change::Released {
            session: 1,
            service: None,
        },
        claimed(2, "ssh-port", Claimed::Port(20001)),
    ];
    for change in expected {
        assert_eq!(changes.try_recv().unwrap(), change);
    }
    assert_eq!(changes.try_recv(), Err(TryRecvError::Empty));
}

/// What `renew` says of `session`: held, or `NotHeld` naming it.
async fn renews(registry: &Memory, session: u64) -> bool {
    match registry.renew(session).await {
        Ok(()) => true,
        Err(ClaimError::NotHeld(s)) if s == session => false,
        Err(other) => panic!("renew of {session}: {other:?}"),
    }
}

fn port_service(name: &str, port: u16) -> Service {
    Service {
        local: "tcp://127.0.0.1:22".into(),
        ..service(name, Expose::Port(port))
    }
}

#[tokio::test]
async fn renew_holds_while_the_session_holds_its_claims_and_fails_once_released() {
    let registry = registry();
    let app = service("app", Expose::Path("/app".into()));
    claim(&registry, holder(1, "office", 0), app).await.unwrap();
    claim(&registry, holder(2, "home", 0), port_service("ssh", 20002))
        .await
        .unwrap();
    assert!(renews(&registry, 1).await);
    assert!(renews(&registry, 2).await, "a port alone is a claim held");
    // Releasing one service leaves the session holding (it may claim again).
    registry.release(1, Some("app")).await.unwrap();
    assert!(renews(&registry, 1).await);
    registry.release(1, None).await.unwrap();
    assert!(!renews(&registry, 1).await);
    assert!(
        renews(&registry, 2).await,
        "another session's release is not its"
    );
}

#[tokio::test]
async fn renew_fails_once_the_same_agents_new_session_took_the_claims_over() {
    let registry = registry();
    let app = service("app", Expose::Host("app.tunnel.test".into()));
    claim(&registry, holder(1, "office", 0), app.clone())
        .await
        .unwrap();
    claim(&registry, holder(3, "office", 0), app).await.unwrap();
    assert!(!renews(&registry, 1).await, "routes taken over");
    assert!(renews(&registry, 3).await);

    let ssh = port_service("ssh", 20003);
    claim(&registry, holder(4, "home", 0), ssh.clone())
        .await
        .unwrap();
    claim(&registry, holder(5, "home", 0), ssh).await.unwrap();
    assert!(!renews(&registry, 4).await, "its only port taken over");

    let private = service("db", Expose::Private(Secret::new("s")));
    claim(&registry, holder(6, "lab", 0), private.clone())
        .await
        .unwrap();
    claim(&registry, holder(7, "lab", 0), private)
        .await
        .unwrap();
    assert!(
        !renews(&registry, 6).await,
        "its only private service taken over"
    );
    assert!(renews(&registry, 7).await);
}

#[tokio::test]
async fn a_refused_claim_takes_nothing_from_the_holder_and_gives_nothing_to_renew() {
    let registry = registry();
    let app = service("app", Expose::Path("/app".into()));
    claim(&registry, holder(1, "office", 0), app.clone())
        .await
        .unwrap();
    claim(&registry, holder(2, "mallory", 0), app)
        .await
        .unwrap_err();
    assert!(renews(&registry, 1).await);
    assert!(!renews(&registry, 2).await, "it was granted nothing");
}

fn route(path: &str) -> Claim {
    Claim::Route {
        host: None,
        path: path.into(),
    }
}

#[tokio::test]
async fn refusals_carry_the_claim_the_holder_and_the_rule_as_data() {
    let registry = registry();
    let app = service("app", Expose::Path("/app".into()));
    claim(&registry, holder(1, "office", 0), app.clone())
        .await
        .unwrap();
    let around = service("all", Expose::Path("/".into()));
    match claim(&registry, holder(2, "mallory", 0), around).await {
        Err(ClaimError::Held {
            what,
            holder,
            held,
            relation,
        }) => {
            assert_eq!(holder.agent, "office");
            assert_eq!(holder.session, 1);
            assert_eq!((what, *held), (route("/"), route("/app")));
            assert_eq!(relation, Nesting::Around);
        }
        other => panic!("{other:?}"),
    }
    let ssh = port_service("ssh", 20004);
    claim(&registry, holder(1, "office", 0), ssh.clone())
        .await
        .unwrap();
    match claim(&registry, holder(2, "mallory", 0), ssh).await {
        Err(ClaimError::Held { what, holder, .. }) => {
            assert_eq!(
                (what, holder.agent.as_str()),
                (Claim::Port(20004), "office")
            );
        }
        other => panic!("{other:?}"),
    }
    let refused = claim(&registry, holder(2, "mallory", 0), port_service("x", 30000)).await;
    let Err(ClaimError::Gateway(GatewayRule::PortOutside { port, allowed })) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!((port, allowed), (30000, 20000..=20010));
    let configured = service("vnc", Expose::Path("/vnc/x".into()));
    let refused = claim(&registry, holder(2, "mallory", 0), configured).await;
    let Err(ClaimError::Gateway(GatewayRule::Path(PathRefusal::Configured { claim, route }))) =
        refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!((claim.as_str(), route.as_str()), ("/vnc/x", "vnc"));
}

#[tokio::test]
async fn a_private_name_held_by_another_agent_names_its_session_in_the_text() {
    let registry = registry();
    let db = service("db", Expose::Private(Secret::new("s")));
    claim(&registry, holder(4, "lab", 0), db.clone())
        .await
        .unwrap();
    let refused = claim(&registry, holder(5, "mallory", 0), db)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "private service \"db\" is held by agent \"lab\" (agent 4)"
    );
    let ClaimError::Held { what, holder, .. } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(
        (what, holder.agent.as_str()),
        (Claim::Private("db".into()), "lab")
    );
}
