//! The table's promises: one row per kind, each protocol's code where it applies, reasons
//! short and fixed.

use std::collections::HashSet;

use super::*;

#[test]
fn every_kind_has_one_distinct_name_and_a_way_to_say_it() {
    let names: HashSet<&str> = Refusal::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), Refusal::ALL.len(), "names are unique");
    for kind in Refusal::ALL {
        let entry = kind.entry();
        let said = entry.status.is_some()
            || entry.close_code.is_some()
            || entry.socks_reply.is_some()
            // Ended without a word: the client stopped answering, or a spliced side broke.
            || matches!(kind, Refusal::HeartbeatLost | Refusal::ConnectionBroken);
        assert!(said, "{kind:?} has no status, close code or reply");
        let name_ok = kind
            .name()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        assert!(name_ok, "{kind:?}: {}", kind.name());
    }
}

#[test]
fn reasons_are_short_fixed_text() {
    for kind in Refusal::ALL {
        let reason = kind.reason();
        assert!(
            !reason.is_empty() && reason.len() <= 64,
            "{kind:?}: {reason:?}"
        );
        // Fixed, printable ASCII: nothing a client sent, nothing that forges a log line, and
        // short enough for a close frame's 123 bytes.
        assert!(
            reason.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{kind:?}: {reason:?}"
        );
        assert!(!reason.contains(['{', '}', '%']), "{kind:?}: {reason:?}");
    }
}

#[test]
fn http_statuses() {
    let cases = [
        (Refusal::BadRequest, 400),
        (Refusal::AmbiguousPath, 400),
        (Refusal::NoRoute, 404),
        (Refusal::NotFound, 404),
        (Refusal::MethodNotAllowed, 405),
        (Refusal::ConnectNotSupported, 405),
        (Refusal::UpgradeRequired, 426),
        (Refusal::BadHandshake, 400),
        (Refusal::AtCapacity, 503),
        (Refusal::ShuttingDown, 503),
        (Refusal::TokenRefused, 403),
        (Refusal::TokenSourceUnreadable, 500),
        (Refusal::AgentTokenUnknown, 401),
        (Refusal::AgentSessionsFull, 429),
        (Refusal::TunnelBudgetFull, 503),
        (Refusal::GatewayBusy, 503),
        (Refusal::UpstreamUnreachable, 502),
        (Refusal::UpstreamConnectTimeout, 504),
        (Refusal::UpstreamTls, 502),
        (Refusal::UpstreamTlsTimeout, 504),
        (Refusal::UpstreamFailed, 502),
        (Refusal::UpstreamResponseTimeout, 504),
        (Refusal::UpstreamBadUpgrade, 502),
        (Refusal::ClientBody, 400),
        (Refusal::ProxyAuthRequired, 407),
        (Refusal::EgressNotAllowed, 403),
        (Refusal::EgressNetworkUnreachable, 502),
        (Refusal::EgressHostUnreachable, 502),
        (Refusal::EgressRefused, 502),
        (Refusal::EgressTimedOut, 504),
        (Refusal::EgressFailed, 502),
    ];
    for (kind, status) in cases {
        assert_eq!(
            kind.entry().status.map(|s| s.as_u16()),
            Some(status),
            "{kind:?}"
        );
    }
    let with_status = Refusal::ALL.iter().filter(|k| k.entry().status.is_some());
    assert_eq!(
        with_status.count(),
        cases.len(),
        "every status is checked above"
    );
}

#[test]
fn websocket_close_codes() {
    let cases = [
        (Refusal::ShuttingDown, 1001),
        (Refusal::UpstreamFailed, 1011),
        (Refusal::ProtocolError, 1002),
        (Refusal::InvalidUtf8, 1007),
        (Refusal::InvalidBase64, 1007),
        (Refusal::MessageTooBig, 1009),
        (Refusal::MessageBudgetFull, 1013),
        (Refusal::TargetFailed, 1011),
        (Refusal::AgentGone, 1001),
        (Refusal::ClientGone, 1001),
        (Refusal::IdleTimeout, 1000),
    ];
    for (kind, code) in cases {
        assert_eq!(kind.close_code(), Some(code), "{kind:?}");
    }
    let with_code = Refusal::ALL.iter().filter(|k| k.close_code().is_some());
    assert_eq!(
        with_code.count(),
        cases.len(),
        "every close code is checked above"
    );
    assert!(Refusal::HeartbeatLost.close_code().is_none());
    assert!(
        Refusal::InvalidBase64.reason().len() <= 123,
        "fits a close frame"
    );
}

#[test]
fn socks5_replies() {
    let cases = [
        (Refusal::EgressFailed, 1),
        (Refusal::EgressNotAllowed, 2),
        (Refusal::EgressNetworkUnreachable, 3),
        (Refusal::EgressHostUnreachable, 4),
        (Refusal::EgressRefused, 5),
        (Refusal::EgressTimedOut, 6),
        (Refusal::SocksCommandUnsupported, 7),
        (Refusal::SocksAddressUnsupported, 8),
        (Refusal::BadRequest, 1),
    ];
    for (kind, reply) in cases {
        assert_eq!(kind.entry().socks_reply, Some(reply), "{kind:?}");
        assert_eq!(kind.socks_reply(), reply, "{kind:?}");
    }
    assert_eq!(
        Refusal::NoRoute.socks_reply(),
        1,
        "no reply of its own: general failure"
    );
}
