//! Validation of a proxy route's keys into a [`ProxySpec`].

use http::{HeaderName, HeaderValue};

use crate::{
    config::{
        ConfigError,
        ctx::Ctx,
        file::{RouteFile, Sp},
        route::{HeaderPolicy, ProxySpec, UpstreamSpec},
        target::Verify,
        upstream_url::UpstreamUrl,
    },
    units::ByteSize,
};

/// A proxy route's settings; `file.proxy` is set. A `tls_ca` file is checked to exist, not
/// read: the assembler loads it (an unreadable one is an error there, at its place).
pub(crate) fn proxy_route(ctx: &Ctx<'_>, file: &RouteFile) -> Result<ProxySpec, ConfigError> {
    let urls = upstream_urls(ctx, file.proxy.as_ref().expect("proxy route"))?;
    let upstreams = urls
        .into_iter()
        .map(|(url, span)| UpstreamSpec {
            url,
            at: Some(ctx.location(span)),
        })
        .collect();
    let mut spec = ProxySpec::new(upstreams);
    if let Some(timeout) = ctx.duration(&file.connect_timeout)? {
        spec.connect_timeout = timeout;
    }
    spec.verify = verify(ctx, file)?;
    spec.balance = parse_or(ctx, &file.balance, spec.balance)?;
    if let Some(fail_timeout) = ctx.duration(&file.fail_timeout)? {
        spec.fail_timeout = fail_timeout;
    }
    if let Some(size) = &file.max_message_size {
        let max = ctx.parse::<ByteSize>(size)?.0;
        spec.max_message_bytes = usize::try_from(max).unwrap_or(usize::MAX);
    }
    spec.mode = parse_or(ctx, &file.mode, spec.mode)?;
    spec.headers = header_policy(ctx, file)?;
    if let Some(timeout) = ctx.duration(&file.response_timeout)? {
        spec.response_timeout = timeout;
    }
    spec.idle_timeout = ctx.duration(&file.idle_timeout)?.filter(|d| !d.is_zero());
    Ok(spec)
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
