//! Request path normalisation: the one form of a path that routes match and upstreams receive.
//!
//! A route that matched one spelling of a path while its upstream reads another is a bypass
//! (`/%61dmin` skipping an `/admin` route, `/api/..;/admin` read as `/admin` by Tomcat). So the
//! path is normalised once, before routing, and the normal form is what every handler sees.

use std::borrow::Cow;

/// Why a request path is refused (400): each is a form only a broken or hostile client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The request target is not a path (`*`, an authority).
    #[error("the request target is not a path starting with /")]
    NotAbsolute,
    /// A `%` without two hex digits after it: servers disagree on what it means.
    #[error("a % in the path is not followed by two hex digits")]
    BadEscape,
    /// `..` above the root.
    #[error("the path climbs above /")]
    AboveRoot,
    /// `.` or `..` beside an encoded separator (`..%2f`, `..%5c`, `..\`): a server that
    /// decodes separators would read a dot segment the gateway did not resolve.
    #[error("a dot segment hides behind an encoded separator")]
    HiddenDotSegment,
    /// `.` or `..` with path parameters (`..;`, `.;x`): Tomcat and Spring drop the parameters
    /// and then resolve the dot segment, behind the gateway's back.
    #[error("path parameters on a dot segment")]
    DotSegmentParameters,
}

/// Normalises a request path (RFC 3986 §6.2.2, with one choice for empty segments):
///
/// 1. `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other
///    escape (`%2F`, `%3B`, `%25`, …) stays as written, so no separator or delimiter appears
///    that the client did not write;
/// 2. empty segments are merged: `//admin//x` is `/admin/x` (nginx's `merge_slashes`); a
///    trailing `/` is kept, since `/dir/` and `/dir` differ;
/// 3. `.` and `..` segments are resolved (RFC 3986 §5.2.4; `/a/b/..` is the directory `/a/`).
///
/// Refused: a path not starting with `/`, a malformed escape, `..` above the root, a dot
/// segment beside an encoded separator (`..%2f`) or with path parameters (`..;`). The result
/// has no dot segment in any reading (decoded, split at `%2F`/`%5C`/`\`, parameters dropped),
/// and normalising it again changes nothing. The query is not part of `path`.
///
/// ```
/// use wsgate::router::{normalize_path, PathError};
/// assert_eq!(normalize_path("/%61dmin/x").unwrap(), "/admin/x");
/// assert_eq!(normalize_path("//admin//x/").unwrap(), "/admin/x/");
/// assert_eq!(normalize_path("/a/./b/../c").unwrap(), "/a/c");
/// assert_eq!(normalize_path("/a/%2E%2e/").unwrap(), "/");
/// assert_eq!(normalize_path("/a%2Fb/%7e").unwrap(), "/a%2Fb/~");
/// assert_eq!(normalize_path("/../etc"), Err(PathError::AboveRoot));
/// assert_eq!(normalize_path("/a/..%2f..%2fetc"), Err(PathError::HiddenDotSegment));
/// assert_eq!(normalize_path("/api/..;/admin"), Err(PathError::DotSegmentParameters));
/// assert_eq!(normalize_path("/100%"), Err(PathError::BadEscape));
/// ```
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    let Some(body) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut changed = false;
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    let mut segments = body.split('/').peekable();
    while let Some(raw) = segments.next() {
        let last = segments.peek().is_none();
        let segment = decode_unreserved(raw)?;
        changed |= matches!(segment, Cow::Owned(_));
        match classify(&segment)? {
            Segment::Plain => {
                out.push(segment);
                continue;
            }
            Segment::Empty if last => {
                out.push(segment);
                continue;
            }
            Segment::Empty | Segment::Dot => {}
            Segment::DotDot => {
                out.pop().ok_or(PathError::AboveRoot)?;
            }
        }
        changed = true;
        if last {
            out.push(Cow::Borrowed("")); // `/a/..` and `/a/.` are the directory `/a/`
        }
    }
    if !changed {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(format!("/{}", out.join("/"))))
}

/// What one segment is, once its unreserved escapes are decoded.
enum Segment {
    Empty,
    Dot,
    DotDot,
    Plain,
}

/// Classifies a decoded segment. A segment is split where a server that decodes `%2F`/`%5C`
/// or reads `\` as `/` would split it, and each piece's parameters (after `;` or `%3B`) are
/// dropped as Tomcat does: no piece may then be a dot segment, unless the segment is exactly
/// `.` or `..`, which is resolved here.
fn classify(segment: &str) -> Result<Segment, PathError> {
    match segment {
        "" => return Ok(Segment::Empty),
        "." => return Ok(Segment::Dot),
        ".." => return Ok(Segment::DotDot),
        _ => {}
    }
    let lower = segment.to_ascii_lowercase();
    let unified = lower
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/");
    let mut pieces = unified.split('/');
    let whole = pieces.clone().count() == 1;
    let dotted = pieces.find(|piece| matches!(piece_name(piece), "." | ".."));
    match dotted {
        None => Ok(Segment::Plain),
        Some(_) if whole => Err(PathError::DotSegmentParameters),
        Some(_) => Err(PathError::HiddenDotSegment),
    }
}

/// A piece of a segment without its parameters: `..;x` → `..`, `..%3bx` → `..`.
fn piece_name(piece: &str) -> &str {
    let end = [piece.find(';'), piece.find("%3b")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(piece.len());
    &piece[..end]
}

/// Whether RFC 3986 calls this byte unreserved: an escape of it means the byte itself.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Decodes the escapes of unreserved characters; other escapes are kept as written.
fn decode_unreserved(segment: &str) -> Result<Cow<'_, str>, PathError> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let hex = rest
            .get(at + 1..at + 3)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(PathError::BadEscape)?;
        let byte = u8::from_str_radix(hex, 16).expect("two hex digits make a byte");
        if is_unreserved(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&rest[at..at + 3]);
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(if out == segment {
        Cow::Borrowed(segment)
    } else {
        Cow::Owned(out)
    })
}

#[cfg(test)]
pub(crate) mod tests;
