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
/// use wsgate::matching::{PathError, normalize_path};
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

/// How a server behind the gateway may read what the normal form keeps as sent: path
/// parameters (`;x`, also `%3B`) and escaped separators (`%2F`, `%5C`, any case, and `\`).
/// Servers differ, so every way is tried; see [`lenient_readings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Parameters dropped from each segment, escapes kept: Tomcat and Spring
    /// (`/admin;x/secret` is `/admin/secret`).
    Parameters,
    /// Escaped separators and `\` read as `/`, parameters kept: nginx, Apache with
    /// `AllowEncodedSlashes On`, IIS for `\` (`/admin%2Fsecret` is `/admin/secret`).
    Separators,
    /// Parameters dropped from each segment as sent, then separators read as `/`: Tomcat with
    /// `encodedSolidusHandling="decode"`.
    ParametersThenSeparators,
    /// Separators read as `/`, then parameters dropped from each resulting segment: a server
    /// that decodes the whole path first.
    SeparatorsThenParameters,
}

impl Reading {
    const ALL: [Reading; 4] = [
        Reading::Parameters,
        Reading::Separators,
        Reading::ParametersThenSeparators,
        Reading::SeparatorsThenParameters,
    ];

    /// The segments `segment` is read as.
    fn read(self, segment: &str) -> Vec<String> {
        match self {
            Reading::Parameters => vec![without_parameters(segment).to_string()],
            Reading::Separators => split_separators(segment),
            Reading::ParametersThenSeparators => split_separators(without_parameters(segment)),
            Reading::SeparatorsThenParameters => split_separators(segment)
                .iter()
                .map(|piece| without_parameters(piece).to_string())
                .collect(),
        }
    }

    /// The error for a dot segment this reading would make appear.
    fn dot_segment_error(self) -> PathError {
        match self {
            Reading::Parameters => PathError::DotSegmentParameters,
            _ => PathError::HiddenDotSegment,
        }
    }
}

/// The other readings of a normal path an upstream may make (see `Reading`), each
/// normalised, without duplicates and without the path itself: empty for a path with no path
/// parameters and no escaped separator, which every server reads one way.
///
/// The gateway keeps `;x` and `%2F` as sent, since they are legitimate (`;v=1`, GitLab's
/// `/api/v4/projects/group%2Fproject`); routing then checks that every reading selects the
/// same route as the path itself, so an upstream never reads `/admin;x/secret` or
/// `/admin%2Fsecret` as `/admin/secret` after the gateway routed it past `/admin`.
///
/// Refused: a reading with a `.` or `..` segment the path itself does not have (`/a/..;x`,
/// `/a/..%2F`; [`normalize_path`] refuses these already, so for its output this never fails).
///
/// ```
/// use wsgate::matching::lenient_readings;
/// assert_eq!(lenient_readings("/admin;x/secret").unwrap(), ["/admin/secret"]);
/// assert_eq!(
///     lenient_readings("/admin%2fsecret;x").unwrap(),
///     ["/admin%2fsecret", "/admin/secret;x", "/admin/secret"]
/// );
/// assert!(lenient_readings("/plain/path%20x").unwrap().is_empty());
/// ```
pub fn lenient_readings(normal: &str) -> Result<Vec<String>, PathError> {
    let body = normal.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if !has_parameters_or_separators(body) {
        return Ok(Vec::new());
    }
    let mut readings: Vec<String> = Vec::new();
    for reading in Reading::ALL {
        let mut read = String::with_capacity(normal.len());
        for segment in body.split('/') {
            for piece in reading.read(segment) {
                if matches!(piece.as_str(), "." | "..") {
                    return Err(reading.dot_segment_error());
                }
                read.push('/');
                read.push_str(&piece);
            }
        }
        let read = normalize_path(&read)?.into_owned();
        if read != normal && !readings.contains(&read) {
            readings.push(read);
        }
    }
    Ok(readings)
}

/// Whether a path has something a server may read in more than one way: `;`, `\`, or an
/// escape of `;`, `/` or `\`.
fn has_parameters_or_separators(path: &str) -> bool {
    path.contains([';', '\\'])
        || path
            .match_indices('%')
            .any(|(at, _)| escaped_at(path, at).is_some())
}

/// The byte an escape of `;`, `/` or `\` at `at` stands for.
fn escaped_at(text: &str, at: usize) -> Option<u8> {
    let hex = text.get(at + 1..at + 3)?;
    [("3b", b';'), ("2f", b'/'), ("5c", b'\\')]
        .into_iter()
        .find(|(code, _)| hex.eq_ignore_ascii_case(code))
        .map(|(_, byte)| byte)
}

/// A segment without its parameters: `a;v=1` → `a`, `a%3Bx` → `a`.
fn without_parameters(segment: &str) -> &str {
    let escaped = segment
        .match_indices('%')
        .map(|(at, _)| at)
        .find(|&at| escaped_at(segment, at) == Some(b';'));
    let end = [segment.find(';'), escaped]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(segment.len());
    &segment[..end]
}

/// A segment split where `%2F`, `%5C` (any case) or `\` would separate it.
fn split_separators(segment: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut rest = segment;
    while let Some(c) = rest.chars().next() {
        let separator = match c {
            '\\' => Some(1),
            '%' => matches!(escaped_at(rest, 0), Some(b'/' | b'\\')).then_some(3),
            _ => None,
        };
        match separator {
            Some(len) => {
                pieces.push(String::new());
                rest = &rest[len..];
            }
            None => {
                pieces.last_mut().expect("never empty").push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    pieces
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
    let dotted = pieces.find(|piece| matches!(without_parameters(piece), "." | ".."));
    match dotted {
        None => Ok(Segment::Plain),
        Some(_) if whole => Err(PathError::DotSegmentParameters),
        Some(_) => Err(PathError::HiddenDotSegment),
    }
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
