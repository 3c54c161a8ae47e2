//! A keep-alive HTTP/1.1 client over raw TCP, so a test sees exactly what went over the wire:
//! several requests on one connection (keep-alive reuse), chunked bodies chunk by chunk
//! (streaming), and response heads read without over-reading what follows (WebSocket frames).

use std::net::SocketAddr;

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use super::{STEP, net::RawResponse};

/// One client connection, reused across requests.
pub struct HttpConn {
    /// The connection, buffered for reading; write through `get_mut()`.
    pub io: BufReader<TcpStream>,
    /// `Host` header value sent with each request.
    host: String,
}

impl HttpConn {
    /// Connects to `addr` (bounded by [`STEP`]).
    pub async fn connect(addr: SocketAddr) -> HttpConn {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        HttpConn {
            io: BufReader::new(stream),
            host: addr.to_string(),
        }
    }

    /// Sends a request with `Host` and `Content-Length` (plus `headers`) and reads the whole
    /// response. The connection stays open for the next request unless the server closes it.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        self.send_head(method, path, headers, Some(body.len()))
            .await;
        self.write_all(body).await;
        self.read_response(method).await
    }

    /// `GET path` with no extra headers.
    pub async fn get(&mut self, path: &str) -> RawResponse {
        self.request("GET", path, &[], b"").await
    }

    /// Writes a request head. With `content_length` of `None` the body is announced as
    /// chunked; send it with [`HttpConn::send_chunk`].
    pub async fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: Option<usize>,
    ) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match content_length {
            Some(0) if method == "GET" || method == "HEAD" => {}
            Some(len) => head.push_str(&format!("Content-Length: {len}\r\n")),
            None => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        self.write_all(head.as_bytes()).await;
    }

    /// Writes one chunk of a chunked request body; an empty chunk ends the body.
    pub async fn send_chunk(&mut self, data: &[u8]) {
        let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
        chunk.extend_from_slice(data);
        // For the last chunk, "0\r\n" then this CRLF is the empty trailer section.
        chunk.extend_from_slice(b"\r\n");
        self.write_all(&chunk).await;
    }

    /// Writes raw bytes.
    pub async fn write_all(&mut self, bytes: &[u8]) {
        tokio::time::timeout(STEP, self.io.get_mut().write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Reads a response head (status line and headers; `body` left empty).
    pub async fn read_head(&mut self) -> RawResponse {
        read_head(&mut self.io).await
    }

    /// Reads one chunk of a chunked body; `None` at the last (empty) chunk, trailers consumed.
    pub async fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = read_line(&mut self.io).await;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        if size == 0 {
            while !read_line(&mut self.io).await.is_empty() {}
            return None;
        }
        let mut data = vec![0; size + 2];
        self.read_exact(&mut data).await;
        assert_eq!(&data[size..], b"\r\n", "chunk not followed by CRLF");
        data.truncate(size);
        Some(data)
    }

    /// Reads a whole response to `method`: head, then the body as its headers frame it
    /// (none for HEAD/1xx/204/304, `Content-Length`, chunked, or until the server closes).
    pub async fn read_response(&mut self, method: &str) -> RawResponse {
        let mut response = self.read_head().await;
        let bodiless = method == "HEAD" || matches!(response.status, 100..=199 | 204 | 304);
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if bodiless {
            return response;
        }
        if chunked {
            while let Some(chunk) = self.read_chunk().await {
                response.body.extend_from_slice(&chunk);
            }
        } else if let Some(len) = response.header("content-length") {
            let mut body = vec![0; len.parse().expect("numeric Content-Length")];
            self.read_exact(&mut body).await;
            response.body = body;
        } else {
            tokio::time::timeout(STEP, self.io.read_to_end(&mut response.body))
                .await
                .expect("body read timed out")
                .expect("body read");
        }
        response
    }

    async fn read_exact(&mut self, buf: &mut [u8]) {
        tokio::time::timeout(STEP, self.io.read_exact(buf))
            .await
            .expect("read timed out")
            .expect("connection closed mid-body");
    }
}

/// Reads an HTTP/1.1 response head from `io`, leaving everything after the blank line unread
/// (in `io`'s buffer). Header names are lowercased; `body` is empty.
pub async fn read_head<R: AsyncBufRead + Unpin>(io: &mut R) -> RawResponse {
    let status_line = read_line(io).await;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(io).await;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad header line {line:?}"));
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    RawResponse {
        status,
        headers,
        body: Vec::new(),
    }
}

/// One CRLF-terminated line without its terminator; panics on EOF or timeout.
async fn read_line<R: AsyncBufRead + Unpin>(io: &mut R) -> String {
    let mut line = Vec::new();
    let n = tokio::time::timeout(STEP, io.read_until(b'\n', &mut line))
        .await
        .expect("read timed out")
        .expect("read");
    assert!(n > 0, "connection closed where a line was expected");
    String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}
