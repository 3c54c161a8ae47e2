//! Static files (`static = "DIR"`): MIME types, `index.html`, `HEAD`, `Last-Modified` /
//! `If-Modified-Since`, and no way out of the directory (`..`, `%2e%2e`, symlinks).

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use futures_util::TryStreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio_util::io::ReaderStream;

use crate::{
    body::{Body, percent_decode, refused, refused_because, text_response},
    refusal::Refusal,
};

/// A static directory route.
#[derive(Debug)]
pub struct FilesRoute {
    /// The directory, canonical so that containment checks compare like with like.
    root: PathBuf,
}

/// A file found for a request.
struct Found {
    path: PathBuf,
    metadata: std::fs::Metadata,
}

impl FilesRoute {
    /// Serves `root`.
    pub fn new(root: PathBuf) -> Self {
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        FilesRoute { root }
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers a GET or HEAD for `rest` (the path after the route prefix).
    pub async fn serve<B>(&self, req: &Request<B>, rest: &str) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut response = refused_because(
                Refusal::MethodNotAllowed,
                "static files answer GET and HEAD only",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let Some(relative) = safe_relative_path(rest) else {
            return refused(Refusal::NotFound);
        };
        match self.find(&relative).await {
            Lookup::Found(found) => respond(req, found).await,
            Lookup::Directory => redirect_to_directory(req),
            Lookup::Missing => refused(Refusal::NotFound),
        }
    }

    /// Resolves a relative path inside the root, following symlinks only if they stay inside.
    async fn find(&self, relative: &Path) -> Lookup {
        let Ok(path) = tokio::fs::canonicalize(self.root.join(relative)).await else {
            return Lookup::Missing;
        };
        if !path.starts_with(&self.root) {
            return Lookup::Missing;
        }
        let Ok(metadata) = tokio::fs::metadata(&path).await else {
            return Lookup::Missing;
        };
        if metadata.is_file() {
            return Lookup::Found(Found { path, metadata });
        }
        let wants_directory =
            relative.as_os_str().is_empty() || relative.to_string_lossy().ends_with('/');
        if !wants_directory {
            return Lookup::Directory;
        }
        let index = path.join("index.html");
        match tokio::fs::metadata(&index).await {
            Ok(metadata) if metadata.is_file() => Lookup::Found(Found {
                path: index,
                metadata,
            }),
            _ => Lookup::Missing,
        }
    }
}

enum Lookup {
    Found(Found),
    /// A directory asked for without its trailing slash.
    Directory,
    Missing,
}

/// Decodes the request path and refuses anything that could climb out: `..` segments (also
/// when percent-encoded), NUL and backslashes. Keeps a trailing `/` to mark directories.
fn safe_relative_path(rest: &str) -> Option<PathBuf> {
    let decoded = percent_decode(rest);
    if decoded.contains(['\0', '\\']) {
        return None;
    }
    let mut relative = String::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return None,
            name => {
                relative.push_str(name);
                relative.push('/');
            }
        }
    }
    if !decoded.ends_with('/') {
        relative.pop();
    }
    Some(PathBuf::from(relative))
}

/// `301` to the same path with a slash, so relative links in its `index.html` resolve.
fn redirect_to_directory<B>(req: &Request<B>) -> Response<Body> {
    let mut location = format!("{}/", req.uri().path());
    if let Some(query) = req.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = text_response(StatusCode::MOVED_PERMANENTLY, "moved");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Whether the client's copy (If-Modified-Since) is still current. HTTP dates have whole
/// seconds, so the file time is compared at that precision.
fn not_modified<B>(req: &Request<B>, modified: SystemTime) -> bool {
    let since = req
        .headers()
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let seconds = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    since.is_some_and(|since| seconds(modified) <= seconds(since))
}

async fn respond<B>(req: &Request<B>, found: Found) -> Response<Body> {
    let modified = found.metadata.modified().ok();
    if modified.is_some_and(|m| not_modified(req, m)) {
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    let body = if req.method() == Method::HEAD {
        Body::default()
    } else {
        match tokio::fs::File::open(&found.path).await {
            Ok(file) => StreamBody::new(ReaderStream::new(file).map_ok(Frame::data)).boxed(),
            Err(_) => return refused(Refusal::NotFound),
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime_type(&found.path)),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(found.metadata.len()),
    );
    if let Some(modified) = modified {
        let date = httpdate::fmt_http_date(modified);
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&date).expect("an HTTP date is a valid header value"),
        );
    }
    response
}

/// The MIME type for a file name. JavaScript modules must be served as JavaScript or browsers
/// refuse them (noVNC is all modules).
fn mime_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "oga" | "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E%2Fetc",
            "/a\\..\\b",
            "/a%00b",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
        assert_eq!(
            safe_relative_path("/app/ui.js"),
            Some(PathBuf::from("app/ui.js"))
        );
        assert_eq!(safe_relative_path("/app/"), Some(PathBuf::from("app/")));
        assert_eq!(safe_relative_path("/./a//b"), Some(PathBuf::from("a/b")));
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_type(Path::new("vnc.html")), "text/html; charset=utf-8");
        assert_eq!(
            mime_type(Path::new("core/rfb.JS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            mime_type(Path::new("x.unknown")),
            "application/octet-stream"
        );
    }
}
