//! The HTTP/1.1 service: each request is checked, put in canonical form, routed (refused if an
//! upstream could read its path as another route's) and handed to its route's handler.

use std::{convert::Infallible, sync::Arc};

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    access_log::{AccessRecord, UpstreamName},
    body::{Body, refused, refused_because},
    budget::{Budgets, descriptors::Slot},
    connector::ClientAddrs,
    front::request,
    handler::RequestContext,
    handshake,
    log_escape::Escaped,
    refusal::Refusal,
    router::{RouteError, Router},
};
use request::Target;

/// Gateway-wide state shared by every connection.
#[derive(Debug)]
pub struct Service {
    /// The route table (shared with `gateway::agents`, which adds agents' routes to it).
    pub router: Arc<Router>,
    /// The agent endpoint, when agents may connect.
    pub agents: Option<Arc<crate::tunnel::hub::AgentHub>>,
    /// Shutdown signal.
    pub shutdown: CancellationToken,
    /// Tracks connections and upgraded sessions.
    pub tracker: TaskTracker,
    /// The gateway-wide budgets.
    pub budgets: Budgets,
}

/// The answer of a gateway at its connection limit: 503, and the connection closed, so its
/// descriptor comes back at once.
fn at_capacity() -> Response<Body> {
    let mut response = refused(Refusal::AtCapacity);
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The request's host: `Host`, which [`request::prepare`] made canonical (and set from an
/// absolute URI's authority).
fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Puts the request in canonical form; the answer when it gets one before routing (a bad
/// request, `OPTIONS *`, `CONNECT`).
fn answer_early<B>(req: &mut Request<B>) -> Option<Response<Body>> {
    match request::prepare(req) {
        Ok(Target::Path) => None,
        Ok(Target::Server) => Some(request::server_options()),
        Ok(Target::Connect) => Some(request::connect_refused()),
        Err(error) => {
            tracing::debug!(%error, "request refused");
            Some(refused_because(Refusal::BadRequest, error))
        }
    }
}

/// The answer to a path the router will not route: one an upstream could read as another
/// route's, or one that is not a path.
fn route_refused(error: RouteError) -> Response<Body> {
    tracing::debug!(%error, "request refused");
    let refusal = match error {
        RouteError::Ambiguous { .. } => Refusal::AmbiguousPath,
        RouteError::Path(_) => Refusal::BadRequest,
    };
    refused_because(refusal, error)
}

impl Service {
    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        client: ClientAddrs,
        req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Result<Response<Body>, Infallible> {
        let in_reserve = slot.in_reserve();
        if in_reserve && !self.is_agent_endpoint(&req) {
            return Ok(at_capacity());
        }
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %Escaped(req.uri().path()),
            route = tracing::field::Empty,
            upstream.addr = tracing::field::Empty,
        );
        let mut response = self.route_request(client, req, slot).instrument(span).await;
        if in_reserve && response.status() != StatusCode::SWITCHING_PROTOCOLS {
            // A refused agent (a bad token) must not keep a reserve slot with keep-alive.
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(header::CONNECTION, close);
        }
        Ok(response)
    }

    /// Whether `req` is for the agent endpoint (which a full gateway still serves).
    fn is_agent_endpoint<B>(&self, req: &Request<B>) -> bool {
        self.agents
            .as_ref()
            .is_some_and(|hub| req.uri().path() == hub.path())
    }

    /// Finds the route and runs its handler; the access-log line is written when the response
    /// body ends, or by the WebSocket session after a 101.
    async fn route_request(
        &self,
        client: ClientAddrs,
        mut req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Response<Body> {
        let record = AccessRecord::new(client.peer, &req);
        if let Some(response) = answer_early(&mut req) {
            return record.log_response(response);
        }
        if let Some(hub) = self
            .agents
            .as_ref()
            .filter(|hub| req.uri().path() == hub.path())
        {
            let response = hub.handle(req, &self.tracker, &self.shutdown, slot);
            return record.with_route("agents").log_response(response);
        }
        let websocket = handshake::is_upgrade(&req);
        let host = request_host(&req);
        let path = req.uri().path().to_string();
        let found = self
            .router
            .find_unambiguous(host.as_deref(), &path, websocket);
        let matched = match found {
            Ok(Some(matched)) => matched,
            Ok(None) => return record.log_response(refused(Refusal::NoRoute)),
            Err(error) => return record.log_response(route_refused(error)),
        };
        let route = &matched.route;
        let shown = tracing::field::display(Escaped(route.name.as_str()));
        tracing::Span::current().record("route", shown);
        let ctx = RequestContext {
            client,
            record: record.with_route(&route.name),
            shutdown: self.shutdown.clone(),
            tracker: self.tracker.clone(),
            budgets: self.budgets.clone(),
            slot,
        };
        let record = ctx.record.clone();
        let response = route.handler.handle(req, matched.rest, ctx).await;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        let record = match response.extensions().get::<UpstreamName>() {
            Some(UpstreamName(upstream)) => record.with_upstream(upstream),
            None => record,
        };
        record.log_response(response)
    }
}
