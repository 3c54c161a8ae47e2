//! Validation of a proxy route's keys into a [`ProxyRoute`].

use std::{sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue};

use super::{
    ConfigError,
    file::{RouteFile, Sp},
    units::ByteSize,
    validate::{Ctx, DEFAULT_MAX_MESSAGE_BYTES},
};
use crate::{
    connector::{
        Connector, DialOptions,
        tls::{TlsDial, Verify},
    },
    handler::proxy::{
        HeaderPolicy, Mode, Policy, ProxyRoute, UpstreamServer, UpstreamUrl, Upstreams,
    },
};

/// nginx's `proxy_read_timeout` for the response head: a slow upstream gets a minute.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// nginx's `fail_timeout`: how long a refused upstream is tried last.
const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a proxy route; `file.proxy` is set.
pub fn proxy_route(ctx: &Ctx<'_>, file: &RouteFile) -> Result<ProxyRoute, ConfigError> {
    let urls = upstream_urls(ctx, file.proxy.as_ref().expect("proxy route"))?;
    let mut dial = DialOptions::default();
    if let Some(timeout) = ctx.duration(&file.connect_timeout)? {
        dial.connect_timeout = timeout;
    }
    let verify = verify(ctx, file)?;
    let servers = urls
        .into_iter()
        .map(|(url, span)| {
            let tls = url
                .tls
                .then(|| TlsDial::new(&url.host, &verify))
                .transpose()
                .map_err(|e| ctx.error(span, e.to_string()))?;
            let connector = Connector::direct(url.target(), dial.clone()).with_tls(tls);
            Ok(Arc::new(UpstreamServer::new(url, connector)))
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let policy = parse_or(ctx, &file.balance, Policy::RoundRobin)?;
    let fail_timeout = ctx
        .duration(&file.fail_timeout)?
        .unwrap_or(DEFAULT_FAIL_TIMEOUT);
    let max_message = match &file.max_message_size {
        Some(size) => ctx.parse::<ByteSize>(size)?.0,
        None => DEFAULT_MAX_MESSAGE_BYTES,
    };
    Ok(ProxyRoute {
        upstreams: Upstreams::new(servers, policy, fail_timeout),
        mode: parse_or(ctx, &file.mode, Mode::Splice)?,
        headers: header_policy(ctx, file)?,
        response_timeout: ctx
            .duration(&file.response_timeout)?
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
        idle_timeout: ctx.duration(&file.idle_timeout)?.filter(|d| !d.is_zero()),
        max_message_bytes: usize::try_from(max_message).unwrap_or(usize::MAX),
    })
}

fn parse_or<T>(ctx: &Ctx<'_>, value: &Option<Sp<String>>, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.as_ref().map_or(Ok(default), |v| ctx.parse(v))
}

/// `proxy = "URL"` or `proxy = ["URL", …]`, each with where it is written.
fn upstream_urls(
    ctx: &Ctx<'_>,
    value: &Sp<toml::Value>,
) -> Result<Vec<(UpstreamUrl, std::ops::Range<usize>)>, ConfigError> {
    let expected = "expected an upstream URL or a list of them, such as \"ws://127.0.0.1:3000\"";
    let texts: Vec<&str> = match value.get_ref() {
        toml::Value::String(url) => vec![url.as_str()],
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| ctx.error(value.span(), expected))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ctx.error(value.span(), expected)),
    };
    texts
        .into_iter()
        .map(|text| {
            let span = locate(ctx, value.span(), text);
            text.parse::<UpstreamUrl>()
                .map(|url| (url, span.clone()))
                .map_err(|e| ctx.error(span, e))
        })
        .collect()
}

/// The span of the string `text` inside the value at `within` (toml keeps no spans inside a
/// `Value`, so the quoted text is found in the source).
fn locate(ctx: &Ctx<'_>, within: std::ops::Range<usize>, text: &str) -> std::ops::Range<usize> {
    let quoted = format!("\"{text}\"");
    ctx.source[within.clone()]
        .find(&quoted)
        .map_or(within.clone(), |at| {
            within.start + at..within.start + at + quoted.len()
        })
}

fn verify(ctx: &Ctx<'_>, file: &RouteFile) -> Result<Verify, ConfigError> {
    match (&file.tls_ca, &file.tls_verify) {
        (Some(_), Some(off)) if !*off.get_ref() => Err(ctx.error(
            off.span(),
            "`tls_verify = false` checks nothing, so `tls_ca` would be ignored: keep one",
        )),
        (_, Some(off)) if !*off.get_ref() => Ok(Verify::Insecure),
        (Some(ca), _) => Ok(Verify::Ca(ctx.existing_path(ca, "CA file")?)),
        (None, _) => Ok(Verify::SystemRoots),
    }
}

fn header_policy(ctx: &Ctx<'_>, file: &RouteFile) -> Result<HeaderPolicy, ConfigError> {
    let mut policy = HeaderPolicy {
        preserve_host: file.preserve_host.as_ref().is_none_or(|p| *p.get_ref()),
        ..HeaderPolicy::default()
    };
    if let Some(set) = &file.set_headers {
        for (name, value) in set.get_ref() {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ctx.error(set.span(), format!("{name:?} is not a header name")))?;
            let value = HeaderValue::from_str(value.get_ref()).map_err(|_| {
                ctx.error(
                    value.span(),
                    "expected a header value of visible ASCII characters",
                )
            })?;
            policy.set.push((header, value));
        }
    }
    if let Some(remove) = &file.remove_headers {
        for name in remove.get_ref() {
            let header = HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
                ctx.error(
                    name.span(),
                    format!("{:?} is not a header name", name.get_ref()),
                )
            })?;
            policy.remove.push(header);
        }
    }
    Ok(policy)
}
