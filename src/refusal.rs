//! THE refusal table: every way the gateway (or an agent's local proxy) refuses a request or
//! ends a connection on its own account, each once, with what every protocol says for it: the
//! HTTP status, the WebSocket close code, the SOCKS5 reply, and the short reason the client
//! sees. Error types map to a kind ([`Refusal`]); responses, close frames, replies and the
//! access log's `outcome` are all read from here, so a metrics layer can count the same kinds.
//!
//! A leaf: imports nothing of the crate. Reasons are fixed text, never what a client sent.

use http::StatusCode;

/// One way of refusing or ending a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The request is malformed (Host, path, `*`), or a proxy request is not one we forward.
    BadRequest,
    /// An upstream could read the path as another route's.
    AmbiguousPath,
    /// No route matches the host and path.
    NoRoute,
    /// A static file (or directory index) that is not there, or may not be reached.
    NotFound,
    /// A method the route does not take.
    MethodNotAllowed,
    /// `CONNECT` where no forward proxy is.
    ConnectNotSupported,
    /// A plain request (or another WebSocket version) on a WebSocket-only route.
    UpgradeRequired,
    /// A broken WebSocket handshake (key, subprotocol).
    BadHandshake,
    /// The gateway is at its connection limit.
    AtCapacity,
    /// The gateway is shutting down.
    ShuttingDown,
    /// A websockify token is missing or unknown.
    TokenRefused,
    /// The websockify token files could not be read: the gateway's fault.
    TokenSourceUnreadable,
    /// An agent presented a token the gateway does not know.
    AgentTokenUnknown,
    /// The agent's token holds as many sessions as it may.
    AgentSessionsFull,
    /// The tunnel memory budget has no room for another agent session.
    TunnelBudgetFull,
    /// A budget of the gateway (tunnel memory) has no room for another stream now.
    GatewayBusy,
    /// The upstream (or an agent's service) could not be reached.
    UpstreamUnreachable,
    /// The upstream did not accept the connection within the connect timeout.
    UpstreamConnectTimeout,
    /// The TLS handshake with the upstream failed.
    UpstreamTls,
    /// The TLS handshake with the upstream took longer than the connect timeout.
    UpstreamTlsTimeout,
    /// The HTTP exchange with the upstream failed, or its connection broke.
    UpstreamFailed,
    /// No response headers from the upstream within the response timeout.
    UpstreamResponseTimeout,
    /// The upstream's 101 is not a valid WebSocket answer.
    UpstreamBadUpgrade,
    /// The client's request body could not be read.
    ClientBody,
    /// The local proxy's credentials are missing or wrong.
    ProxyAuthRequired,
    /// A SOCKS5 command we do not implement (BIND).
    SocksCommandUnsupported,
    /// A SOCKS5 address type RFC 1928 does not define.
    SocksAddressUnsupported,
    /// The egress policy (or the token) does not allow the destination.
    EgressNotAllowed,
    /// No route to the destination's network (or the exit agent is not connected).
    EgressNetworkUnreachable,
    /// The destination's name does not resolve, or no route to the host.
    EgressHostUnreachable,
    /// The destination refused the connection.
    EgressRefused,
    /// The destination did not answer in time.
    EgressTimedOut,
    /// Any other egress failure.
    EgressFailed,
    /// The peer broke the WebSocket protocol.
    ProtocolError,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// A bridge message in base64 mode that is not base64.
    InvalidBase64,
    /// A message larger than the route allows.
    MessageTooBig,
    /// The gateway-wide message memory is full: try again later.
    MessageBudgetFull,
    /// The target's connection failed after the upgrade.
    TargetFailed,
    /// The agent that reached the target left.
    AgentGone,
    /// The client went away (what the upstream is told).
    ClientGone,
    /// No data either way for the idle timeout.
    IdleTimeout,
    /// Heartbeat pings went unanswered: the client is dropped without a close frame.
    HeartbeatLost,
    /// A spliced connection broke on one side or the other (the gateway sees no frames, so
    /// none is sent).
    ConnectionBroken,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// A short snake_case name: the access log's `outcome`, a metric's label.
    pub name: &'static str,
    /// The status before an upgrade, where an HTTP answer is possible.
    pub status: Option<StatusCode>,
    /// The WebSocket close code after an upgrade, where a close frame is sent.
    pub close_code: Option<u16>,
    /// The SOCKS5 reply code (RFC 1928 §6), where a SOCKS client can be refused so.
    pub socks_reply: Option<u8>,
    /// What the client reads: short, fixed, never client text.
    pub reason: &'static str,
}

/// WebSocket close codes (RFC 6455 §7.4.1) the table uses.
pub mod close {
    /// The connection ended as it should.
    pub(crate) const NORMAL: u16 = 1000;
    /// An endpoint is going away (shutdown, an agent gone).
    pub(crate) const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub(crate) const PROTOCOL_ERROR: u16 = 1002;
    /// Data inconsistent with the message type (bad UTF-8, bad base64).
    pub(crate) const INVALID_PAYLOAD: u16 = 1007;
    /// A message too big to process.
    pub(crate) const MESSAGE_TOO_BIG: u16 = 1009;
    /// An unexpected condition on our side.
    pub(crate) const INTERNAL_ERROR: u16 = 1011;
    /// Try again later: overloaded.
    pub(crate) const TRY_AGAIN_LATER: u16 = 1013;
}

const fn row(
    name: &'static str,
    status: Option<StatusCode>,
    close_code: Option<u16>,
    socks_reply: Option<u8>,
    reason: &'static str,
) -> Entry {
    Entry {
        name,
        status,
        close_code,
        socks_reply,
        reason,
    }
}

impl Refusal {
    /// Every kind, for tests and for a metrics layer that pre-registers its counters.
    pub const ALL: [Refusal; 44] = {
        use Refusal::*;
        [
            BadRequest,
            AmbiguousPath,
            NoRoute,
            NotFound,
            MethodNotAllowed,
            ConnectNotSupported,
            UpgradeRequired,
            BadHandshake,
            AtCapacity,
            ShuttingDown,
            TokenRefused,
            TokenSourceUnreadable,
            AgentTokenUnknown,
            AgentSessionsFull,
            TunnelBudgetFull,
            GatewayBusy,
            UpstreamUnreachable,
            UpstreamConnectTimeout,
            UpstreamTls,
            UpstreamTlsTimeout,
            UpstreamFailed,
            UpstreamResponseTimeout,
            UpstreamBadUpgrade,
            ClientBody,
            ProxyAuthRequired,
            SocksCommandUnsupported,
            SocksAddressUnsupported,
            EgressNotAllowed,
            EgressNetworkUnreachable,
            EgressHostUnreachable,
            EgressRefused,
            EgressTimedOut,
            EgressFailed,
            ProtocolError,
            InvalidUtf8,
            InvalidBase64,
            MessageTooBig,
            MessageBudgetFull,
            TargetFailed,
            AgentGone,
            ClientGone,
            IdleTimeout,
            HeartbeatLost,
            ConnectionBroken,
        ]
    };

    /// This kind's row: the one place its status, close code, reply and reason are chosen.
    #[rustfmt::skip]
    pub const fn entry(self) -> Entry {
        use Refusal::*;
        use StatusCode as S;
        use close::*;
        let (s, c, r) = (Some::<StatusCode>, Some::<u16>, Some::<u8>);
        match self {
            // RFC 1928 has no reply for a malformed request (a bad name): general failure.
            BadRequest => row("bad_request", s(S::BAD_REQUEST), None, r(0x01), "bad request"),
            AmbiguousPath => row("ambiguous_path", s(S::BAD_REQUEST), None, None, "ambiguous path"),
            NoRoute => row("no_route", s(S::NOT_FOUND), None, None, "no route for this path"),
            NotFound => row("not_found", s(S::NOT_FOUND), None, None, "not found"),
            MethodNotAllowed => row("method_not_allowed", s(S::METHOD_NOT_ALLOWED), None, None, "method not allowed"),
            ConnectNotSupported => row("connect_not_supported", s(S::METHOD_NOT_ALLOWED), None, None, "CONNECT is not supported: the gateway is not a forward proxy"),
            UpgradeRequired => row("upgrade_required", s(S::UPGRADE_REQUIRED), None, None, "this route speaks WebSocket only"),
            BadHandshake => row("bad_handshake", s(S::BAD_REQUEST), None, None, "invalid WebSocket handshake"),
            AtCapacity => row("at_capacity", s(S::SERVICE_UNAVAILABLE), None, None, "gateway at its connection limit"),
            ShuttingDown => row("shutting_down", s(S::SERVICE_UNAVAILABLE), c(GOING_AWAY), None, "gateway shutting down"),
            TokenRefused => row("token_refused", s(S::FORBIDDEN), None, None, "unknown token"),
            TokenSourceUnreadable => row("token_source_unreadable", s(S::INTERNAL_SERVER_ERROR), None, None, "token source unreadable"),
            AgentTokenUnknown => row("agent_token_unknown", s(S::UNAUTHORIZED), None, None, "unknown agent token"),
            AgentSessionsFull => row("agent_sessions_full", s(S::TOO_MANY_REQUESTS), None, None, "this token holds the most agent sessions"),
            TunnelBudgetFull => row("tunnel_budget_full", s(S::SERVICE_UNAVAILABLE), None, None, "the gateway's tunnel memory budget is full"),
            GatewayBusy => row("gateway_busy", s(S::SERVICE_UNAVAILABLE), None, None, "gateway busy"),
            UpstreamUnreachable => row("upstream_unreachable", s(S::BAD_GATEWAY), None, None, "upstream unreachable"),
            UpstreamConnectTimeout => row("upstream_connect_timeout", s(S::GATEWAY_TIMEOUT), None, None, "upstream connect timed out"),
            UpstreamTls => row("upstream_tls", s(S::BAD_GATEWAY), None, None, "upstream TLS handshake failed"),
            UpstreamTlsTimeout => row("upstream_tls_timeout", s(S::GATEWAY_TIMEOUT), None, None, "upstream TLS handshake timed out"),
            UpstreamFailed => row("upstream_failed", s(S::BAD_GATEWAY), c(INTERNAL_ERROR), None, "upstream connection failed"),
            UpstreamResponseTimeout => row("upstream_response_timeout", s(S::GATEWAY_TIMEOUT), None, None, "upstream response timed out"),
            UpstreamBadUpgrade => row("upstream_bad_upgrade", s(S::BAD_GATEWAY), None, None, "upstream refused the WebSocket protocol"),
            ClientBody => row("client_body", s(S::BAD_REQUEST), None, None, "malformed request body"),
            ProxyAuthRequired => row("proxy_auth_required", s(S::PROXY_AUTHENTICATION_REQUIRED), None, None, "proxy authentication required"),
            SocksCommandUnsupported => row("socks_command_unsupported", None, None, r(0x07), "command not supported"),
            SocksAddressUnsupported => row("socks_address_unsupported", None, None, r(0x08), "address type not supported"),
            EgressNotAllowed => row("egress_not_allowed", s(S::FORBIDDEN), None, r(0x02), "not allowed"),
            EgressNetworkUnreachable => row("egress_network_unreachable", s(S::BAD_GATEWAY), None, r(0x03), "network unreachable"),
            EgressHostUnreachable => row("egress_host_unreachable", s(S::BAD_GATEWAY), None, r(0x04), "host unreachable"),
            EgressRefused => row("egress_refused", s(S::BAD_GATEWAY), None, r(0x05), "connection refused"),
            // A timeout is what clients read 0x06 as (curl: "TTL expired", i.e. timed out).
            EgressTimedOut => row("egress_timed_out", s(S::GATEWAY_TIMEOUT), None, r(0x06), "timed out"),
            EgressFailed => row("egress_failed", s(S::BAD_GATEWAY), None, r(0x01), "general failure"),
            ProtocolError => row("protocol_error", None, c(PROTOCOL_ERROR), None, "protocol error"),
            InvalidUtf8 => row("invalid_utf8", None, c(INVALID_PAYLOAD), None, "invalid UTF-8"),
            InvalidBase64 => row("invalid_base64", None, c(INVALID_PAYLOAD), None, "invalid base64"),
            MessageTooBig => row("message_too_big", None, c(MESSAGE_TOO_BIG), None, "message too big"),
            MessageBudgetFull => row("message_budget_full", None, c(TRY_AGAIN_LATER), None, "gateway message memory is full"),
            TargetFailed => row("target_failed", None, c(INTERNAL_ERROR), None, "target connection failed"),
            AgentGone => row("agent_gone", None, c(GOING_AWAY), None, "the agent left"),
            ClientGone => row("client_gone", None, c(GOING_AWAY), None, "client went away"),
            IdleTimeout => row("idle_timeout", None, c(NORMAL), None, "idle timeout"),
            HeartbeatLost => row("heartbeat_lost", None, None, None, "heartbeat lost"),
            ConnectionBroken => row("connection_broken", None, None, None, "connection error"),
        }
    }

    /// The access log's `outcome` and a metric's label.
    pub const fn name(self) -> &'static str {
        self.entry().name
    }

    /// The HTTP status; kinds that only end upgraded connections answer 500 if ever asked.
    pub fn status(self) -> StatusCode {
        self.entry()
            .status
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The close code, for kinds that end a WebSocket with a close frame.
    pub const fn close_code(self) -> Option<u16> {
        self.entry().close_code
    }

    /// The SOCKS5 reply; kinds without one are a general failure (0x01).
    pub(crate) fn socks_reply(self) -> u8 {
        self.entry().socks_reply.unwrap_or(0x01)
    }

    /// The short reason the client sees.
    pub const fn reason(self) -> &'static str {
        self.entry().reason
    }
}

#[cfg(test)]
mod tests;
