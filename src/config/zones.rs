//! The space a gateway config gives agents to claim: `[agents] hosts` and `paths` (the zones),
//! `gateway_names` (names no host claim may take), and each token's `hosts` and `paths`, which
//! narrow the zones. Checked against the configured routes at load; errors name file:line:col.

use crate::{
    config::{ConfigError, ctx::Ctx, file::Sp, route::RouteSpec},
    matching::{
        HostPattern,
        claim_rules::{canonical_host, covers},
        normalize_prefix, strip_prefix,
    },
};

/// Host patterns for agents' claims, canonical (`matching::claim_rules::canonical_host`):
/// never an IP literal or localhost.
pub(super) fn host_patterns(
    ctx: &Ctx<'_>,
    list: &[Sp<String>],
) -> Result<Vec<HostPattern>, ConfigError> {
    list.iter()
        .map(|h| canonical_host(h.get_ref()).map_err(|e| ctx.error(h.span(), e.to_string())))
        .collect()
}

/// A token's host `pattern` (as `written`) narrows the gateway's zone: refused without one, or
/// when no zone pattern covers it whole.
pub(super) fn check_token_host(
    ctx: &Ctx<'_>,
    pattern: &HostPattern,
    written: &Sp<String>,
    gateway_hosts: &[HostPattern],
) -> Result<(), ConfigError> {
    if gateway_hosts.is_empty() {
        let message = "a token's `hosts` narrows [agents] hosts, which is not set: \
                       set [agents] hosts to the patterns agents may claim hosts under";
        return Err(ctx.error(written.span(), message));
    }
    if gateway_hosts.iter().any(|outer| covers(outer, pattern)) {
        return Ok(());
    }
    let allowed: Vec<String> = gateway_hosts.iter().map(ToString::to_string).collect();
    Err(ctx.error(
        written.span(),
        format!(
            "host pattern {pattern} is not under [agents] hosts ({})",
            allowed.join(", ")
        ),
    ))
}

/// Path prefixes as written, each canonical (`matching::normalize_prefix`).
fn prefixes(ctx: &Ctx<'_>, list: &[Sp<String>]) -> Result<Vec<String>, ConfigError> {
    list.iter()
        .map(|p| normalize_prefix(p.get_ref()).map_err(|e| ctx.error(p.span(), e)))
        .collect()
}

/// `[agents] paths`: the prefixes agents may claim paths under. A zone is the operator
/// carving space out of the routes: it may lie under the `/` catch-all (that is the point),
/// but may not be a configured route's own prefix, nor lie under a configured route other
/// than `/`, whose requests it would hand to agents.
pub(super) fn path_zones(
    ctx: &Ctx<'_>,
    list: &[Sp<String>],
    routes: &[RouteSpec],
) -> Result<Vec<String>, ConfigError> {
    let zones = prefixes(ctx, list)?;
    for (zone, written) in zones.iter().zip(list) {
        let taken = routes
            .iter()
            .filter(|r| r.host.is_none())
            .find(|r| *zone == r.path || (r.path != "/" && strip_prefix(&r.path, zone).is_some()));
        if let Some(route) = taken {
            let how = if *zone == route.path {
                "is the prefix of".to_string()
            } else {
                format!("lies under {}, the prefix of", route.path)
            };
            return Err(ctx.error(
                written.span(),
                format!(
                    "[agents] paths zone {zone} {how} the configured route {:?}: agents \
                     would take its requests; give agents a path of their own",
                    route.name
                ),
            ));
        }
    }
    Ok(zones)
}

/// A token's `paths`, canonical; each must lie under `[agents] paths` when that is set.
pub(super) fn token_paths(
    ctx: &Ctx<'_>,
    list: &[Sp<String>],
    zones: Option<&[String]>,
) -> Result<Vec<String>, ConfigError> {
    let paths = prefixes(ctx, list)?;
    let Some(zones) = zones else {
        return Ok(paths);
    };
    for (path, written) in paths.iter().zip(list) {
        if !zones.iter().any(|zone| strip_prefix(zone, path).is_some()) {
            return Err(ctx.error(
                written.span(),
                format!(
                    "path prefix {path} is not under [agents] paths ({})",
                    zones.join(", ")
                ),
            ));
        }
    }
    Ok(paths)
}

/// `[agents] gateway_names`: host names the gateway is reached by (as a TLS certificate's
/// names are), canonical: lowercase, no trailing dot. Exact names only: the gateway is
/// reached by names, and a pattern here would read as a zone.
pub(super) fn gateway_names(
    ctx: &Ctx<'_>,
    list: &[Sp<String>],
) -> Result<Vec<String>, ConfigError> {
    list.iter()
        .map(|written| match HostPattern::parse(written.get_ref()) {
            Ok(HostPattern::Exact(name)) => Ok(name),
            _ => Err(ctx.error(
                written.span(),
                format!(
                    "expected a host name the gateway is reached by, such as \
                     \"gw.example.com\", found {:?}",
                    written.get_ref()
                ),
            )),
        })
        .collect()
}
