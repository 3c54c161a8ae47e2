//! `[[route]]`s: each route's match and its one handler, the keys that belong to that handler
//! only, and "this route can never match" when an earlier route has the same match.

use std::ops::Range;

use crate::{
    config::{
        ConfigError,
        ctx::Ctx,
        file::{RouteFile, Sp},
        route::{
            BridgeSpec, BridgeTarget, DEFAULT_MAX_MESSAGE_BYTES, RouteKind, RouteSpec, StaticSpec,
            TokenFiles,
        },
        target::{ProxyProtocol, Target},
    },
    io::pump::watchdog::Heartbeat,
    matching::{HostPattern, normalize_prefix},
    units::ByteSize,
};

/// The routes in file order; a route with the same match as an earlier one is an error.
pub(super) fn routes(
    ctx: &Ctx<'_>,
    files: &[Sp<RouteFile>],
) -> Result<Vec<RouteSpec>, ConfigError> {
    let mut routes: Vec<RouteSpec> = Vec::with_capacity(files.len());
    for file in files {
        let route = route(ctx, file)?;
        if let Some(earlier) = routes
            .iter()
            .find(|r| r.host == route.host && r.path == route.path && r.kind.overlaps(&route.kind))
        {
            return Err(ctx.error(
                file.span(),
                format!(
                    "this route can never match: route {:?} has the same host and path",
                    earlier.name
                ),
            ));
        }
        routes.push(route);
    }
    Ok(routes)
}

fn route(ctx: &Ctx<'_>, value: &Sp<RouteFile>) -> Result<RouteSpec, ConfigError> {
    let file = value.get_ref();
    let path = match &file.path {
        Some(path) => normalize_prefix(path.get_ref()).map_err(|e| ctx.error(path.span(), e))?,
        None => "/".to_string(),
    };
    let host = file
        .host
        .as_ref()
        .map(|h| HostPattern::parse(h.get_ref()).map_err(|e| ctx.error(h.span(), e)))
        .transpose()?;
    let kind = handler(ctx, value)?;
    let name = match (&file.name, &host) {
        (Some(name), _) => name.get_ref().clone(),
        (None, Some(host)) => format!("{host}{path}"),
        (None, None) => path.clone(),
    };
    Ok(RouteSpec {
        name,
        host,
        path,
        kind,
        at: Some(ctx.location(value.span())),
    })
}

/// The handlers a route can name, by the key that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bridge,
    Static,
    Proxy,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Static => "static",
            Kind::Proxy => "proxy",
        }
    }
}

/// Route keys that belong to particular handlers, and which.
const HANDLER_KEYS: &[(&str, &[Kind])] = &[
    ("connect_timeout", &[Kind::Bridge, Kind::Proxy]),
    ("idle_timeout", &[Kind::Bridge, Kind::Proxy]),
    ("max_message_size", &[Kind::Bridge, Kind::Proxy]),
    ("heartbeat", &[Kind::Bridge]),
    ("pong_timeout", &[Kind::Bridge]),
    ("proxy_protocol", &[Kind::Bridge]),
    ("mode", &[Kind::Proxy]),
    ("balance", &[Kind::Proxy]),
    ("fail_timeout", &[Kind::Proxy]),
    ("response_timeout", &[Kind::Proxy]),
    ("set_headers", &[Kind::Proxy]),
    ("remove_headers", &[Kind::Proxy]),
    ("preserve_host", &[Kind::Proxy]),
    ("tls_ca", &[Kind::Proxy]),
    ("tls_verify", &[Kind::Proxy]),
];

/// Where each handler-specific key is written, if it is.
fn handler_key_spans(file: &RouteFile) -> Vec<(&'static str, Option<Range<usize>>)> {
    let span = |v: &Option<Sp<String>>| v.as_ref().map(Sp::span);
    vec![
        ("connect_timeout", span(&file.connect_timeout)),
        ("idle_timeout", span(&file.idle_timeout)),
        ("max_message_size", span(&file.max_message_size)),
        ("heartbeat", span(&file.heartbeat)),
        ("pong_timeout", span(&file.pong_timeout)),
        ("proxy_protocol", span(&file.proxy_protocol)),
        ("mode", span(&file.mode)),
        ("balance", span(&file.balance)),
        ("fail_timeout", span(&file.fail_timeout)),
        ("response_timeout", span(&file.response_timeout)),
        ("set_headers", file.set_headers.as_ref().map(Sp::span)),
        ("remove_headers", file.remove_headers.as_ref().map(Sp::span)),
        ("preserve_host", file.preserve_host.as_ref().map(Sp::span)),
        ("tls_ca", span(&file.tls_ca)),
        ("tls_verify", file.tls_verify.as_ref().map(Sp::span)),
    ]
}

/// Refuses keys that mean nothing for this route's handler.
fn reject_foreign_keys(ctx: &Ctx<'_>, file: &RouteFile, kind: Kind) -> Result<(), ConfigError> {
    for (key, span) in handler_key_spans(file) {
        let Some(span) = span else { continue };
        let owners = HANDLER_KEYS
            .iter()
            .find(|(name, _)| *name == key)
            .map_or(&[][..], |(_, kinds)| *kinds);
        if !owners.contains(&kind) {
            let names: Vec<&str> = owners.iter().map(|k| k.key()).collect();
            return Err(ctx.error(
                span,
                format!("`{key}` applies to {} routes only", names.join(" and ")),
            ));
        }
    }
    Ok(())
}

fn handler(ctx: &Ctx<'_>, value: &Sp<RouteFile>) -> Result<RouteKind, ConfigError> {
    let file = value.get_ref();
    let bridge = file
        .bridge
        .as_ref()
        .or(file.bridge_tokens.as_ref())
        .map(Sp::span);
    let mut named: Vec<(Kind, Range<usize>)> = [
        (Kind::Bridge, bridge),
        (Kind::Static, file.static_dir.as_ref().map(Sp::span)),
        (Kind::Proxy, file.proxy.as_ref().map(Sp::span)),
    ]
    .into_iter()
    .filter_map(|(kind, span)| Some((kind, span?)))
    .collect();
    named.sort_by_key(|(_, span)| span.start);
    let kind = match named.as_slice() {
        [] => return Err(ctx.error(value.span(), "expected a handler in this route: `bridge = \"tcp://host:port\"`, `bridge_tokens = \"FILE\"`, `proxy = \"ws://host:port\"` or `static = \"DIR\"`")),
        [(kind, _)] => *kind,
        [(first, _), (second, span), ..] => {
            return Err(ctx.error(span.clone(), format!("a route has one handler: `{}` cannot be combined with `{}`", second.key(), first.key())));
        }
    };
    reject_foreign_keys(ctx, file, kind)?;
    match kind {
        Kind::Bridge => bridge_route(ctx, file).map(RouteKind::Bridge),
        Kind::Proxy => crate::config::proxy::proxy_route(ctx, file).map(RouteKind::Proxy),
        Kind::Static => {
            let dir = file.static_dir.as_ref().expect("named above");
            let root = ctx.existing_path(dir, "static directory")?;
            if !root.is_dir() {
                return Err(ctx.error(
                    dir.span(),
                    format!("static directory {} is not a directory", root.display()),
                ));
            }
            Ok(RouteKind::Static(StaticSpec { root }))
        }
    }
}

/// A bridge route's settings. Its token source is checked to exist, not read: it is read per
/// connection (or once, at assembly).
fn bridge_route(ctx: &Ctx<'_>, file: &RouteFile) -> Result<BridgeSpec, ConfigError> {
    let target = file
        .bridge
        .as_ref()
        .map(|t| ctx.parse::<Target>(t))
        .transpose()?;
    let tokens = file
        .bridge_tokens
        .as_ref()
        .map(|t| {
            ctx.existing_path(t, "token source")
                .map(|path| TokenFiles { path, reload: true })
        })
        .transpose()?;
    let heartbeat = ctx.duration(&file.heartbeat)?;
    let pong_timeout = ctx.duration(&file.pong_timeout)?;
    if let (None, Some(pong)) = (heartbeat, &file.pong_timeout) {
        return Err(ctx.error(pong.span(), "`pong_timeout` needs `heartbeat`"));
    }
    let max_message = match &file.max_message_size {
        Some(size) => ctx.parse::<ByteSize>(size)?.0,
        None => DEFAULT_MAX_MESSAGE_BYTES,
    };
    let mut spec = BridgeSpec::new(BridgeTarget::Direct { target, tokens });
    if let Some(timeout) = ctx.duration(&file.connect_timeout)? {
        spec.connect_timeout = timeout;
    }
    spec.proxy_protocol = file
        .proxy_protocol
        .as_ref()
        .map(|p| ctx.parse::<ProxyProtocol>(p))
        .transpose()?;
    spec.idle_timeout = ctx.duration(&file.idle_timeout)?.filter(|d| !d.is_zero());
    spec.heartbeat = heartbeat
        .filter(|d| !d.is_zero())
        .map(|interval| Heartbeat {
            interval,
            pong_timeout: pong_timeout.unwrap_or(interval),
        });
    spec.max_message_bytes = usize::try_from(max_message).unwrap_or(usize::MAX);
    Ok(spec)
}
