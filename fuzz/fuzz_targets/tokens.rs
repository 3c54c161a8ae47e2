//! websockify token files as a user writes them (`token: host:port`, `token: unix_socket:PATH`,
//! comments, anything else), and the token a request carries. Property: the table read from a
//! file, written back one `token: target` line each, reads back to the same table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::{connector::Target, fuzzing::token_file, handler::bridge::tokens::token_from_request};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let table = token_file(&text);
    let written: String = table
        .iter()
        .map(|(token, target)| format!("{token}: {}\n", line(target)))
        .collect();
    assert_eq!(token_file(&written), table, "written back as {written:?}");
    let (path, query) = text
        .split_once('?')
        .map_or((&*text, None), |(p, q)| (p, Some(q)));
    let _ = token_from_request(path, query);
});

/// A target as a token file writes it. The host always in brackets: `unix_socket:1` would read
/// as a Unix socket, where `[unix_socket]:1` is the host `unix_socket` (found by this target).
fn line(target: &Target) -> String {
    match target {
        Target::Tcp { host, port } => format!("[{host}]:{port}"),
        Target::Unix(path) => format!("unix_socket:{}", path.display()),
    }
}
