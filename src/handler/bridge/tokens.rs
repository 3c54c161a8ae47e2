//! websockify's token files: lines `token: host:port` (or `token: unix_socket:/path`) in one file
//! or in every file of a directory; the token comes from `?token=` or else the request path.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::{body::percent_decode, connector::Target, log_escape::Escaped, refusal::Refusal};

/// Where tokens are looked up.
#[derive(Debug)]
pub struct TokenSource {
    /// A file, or a directory whose files are all read.
    path: PathBuf,
    /// Re-read on every connection (websockify's `TokenFile`) so edits apply without a restart;
    /// `false` reads once (`ReadOnlyTokenFile`).
    reload: bool,
    /// The table read once when `reload` is off.
    cached: OnceLock<HashMap<String, Target>>,
}

/// A token that could not be turned into a target.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request carries no token.
    #[error("a token is required (?token=...)")]
    Missing,
    /// The token is not in the token files.
    #[error("unknown token")]
    Unknown,
    /// The token files could not be read.
    #[error("token source unreadable")]
    Unreadable(#[source] io::Error),
}

impl TokenError {
    /// Missing or unknown tokens are refused; an unreadable source is our fault.
    pub fn refusal(&self) -> Refusal {
        match self {
            TokenError::Missing | TokenError::Unknown => Refusal::TokenRefused,
            TokenError::Unreadable(_) => Refusal::TokenSourceUnreadable,
        }
    }
}

impl TokenSource {
    /// A source at `path`; `reload` re-reads it for every connection. Warns (once, here) when
    /// group or others may read the token files.
    pub fn new(path: PathBuf, reload: bool) -> Self {
        crate::secret::file::warn_if_exposed("token file", &path);
        TokenSource {
            path,
            reload,
            cached: OnceLock::new(),
        }
    }

    /// The file or directory, for the banner.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks a token up. File reads are small and rare (once per connection), so they run on
    /// the blocking pool rather than holding a runtime thread.
    pub(crate) async fn lookup(&self, token: &str) -> Result<Target, TokenError> {
        if let Some(table) = self.cached.get().filter(|_| !self.reload) {
            return table.get(token).cloned().ok_or(TokenError::Unknown);
        }
        let path = self.path.clone();
        let table = tokio::task::spawn_blocking(move || load(&path))
            .await
            .map_err(io::Error::other)
            .and_then(|result| result)
            .map_err(TokenError::Unreadable)?;
        let target = table.get(token).cloned().ok_or(TokenError::Unknown);
        if !self.reload {
            let _ = self.cached.set(table);
        }
        target
    }
}

/// The token in a request: `?token=` first, else the path without its leading `/`.
///
/// ```
/// use wsgate::handler::bridge::tokens::token_from_request;
/// assert_eq!(token_from_request("/websockify", Some("token=abc&x=1")).as_deref(), Some("abc"));
/// assert_eq!(token_from_request("/abc", None).as_deref(), Some("abc"));
/// assert_eq!(token_from_request("/", None), None);
/// ```
pub fn token_from_request(path: &str, query: Option<&str>) -> Option<String> {
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|value| percent_decode(value).trim_end_matches('\n').to_string());
    from_query.or_else(|| {
        let token = path.trim_start_matches('/');
        (!token.is_empty()).then(|| percent_decode(token))
    })
}

/// Reads every token line of a file or a directory of files.
fn load(path: &Path) -> io::Result<HashMap<String, Target>> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut table = HashMap::new();
    for file in files {
        parse_into(&std::fs::read_to_string(&file)?, &mut table);
    }
    Ok(table)
}

/// Parses `token: host:port` lines; `#` comments and malformed lines are skipped, as websockify
/// does (it logs them; a bad line must not take the other tokens down).
pub(crate) fn parse_into(text: &str, table: &mut HashMap<String, Target>) {
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((token, target)) = split_token_line(line) else {
            tracing::warn!(line = %Escaped(line), "token line is not `token: host:port`");
            continue;
        };
        let target = match target.strip_prefix("unix_socket:") {
            Some(path) => Ok(Target::Unix(PathBuf::from(path))),
            None => Target::parse_host_port(target),
        };
        match target {
            Ok(target) => {
                table.insert(token.to_string(), target);
            }
            Err(error) => tracing::warn!(error = %Escaped(error), "token line skipped"),
        }
    }
}

/// Splits at the first `:` followed by whitespace, as websockify's `re.split(r':\s', line)`.
fn split_token_line(line: &str) -> Option<(&str, &str)> {
    let at = line
        .char_indices()
        .find(|&(i, c)| c == ':' && line[i + 1..].starts_with(char::is_whitespace))?
        .0;
    Some((&line[..at], line[at + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_websockify_token_lines() {
        let mut table = HashMap::new();
        parse_into(
            "# comment\nvnc1: 127.0.0.1:5901\nv6: [::1]:5902\n\nsock: unix_socket:/run/x.sock\nbroken line\n",
            &mut table,
        );
        assert_eq!(table.len(), 3);
        assert_eq!(
            table["vnc1"],
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 5901
            }
        );
        assert_eq!(
            table["v6"],
            Target::Tcp {
                host: "::1".into(),
                port: 5902
            }
        );
        assert_eq!(table["sock"], Target::Unix("/run/x.sock".into()));
    }

    /// Found by `fuzz/` (target `tokens`): a space inside the brackets stayed in the host, so
    /// `v6: [ h:1` dialled " h", and the table did not write back to itself.
    #[test]
    fn spaces_inside_brackets_are_not_part_of_the_host() {
        let crash = b"a:\xea\xea\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff [:5901\nv6: [ h:1\n";
        let mut table = HashMap::new();
        parse_into(&String::from_utf8_lossy(crash), &mut table);
        let tcp = |host: &str, port| Target::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(table.get("v6"), Some(&tcp("h", 1)));
        let mut again = HashMap::new();
        parse_into("v6: h:1\nb: [ ::1 ]:2\n", &mut again);
        assert_eq!(again.get("v6"), table.get("v6"));
        assert_eq!(again.get("b"), Some(&tcp("::1", 2)));
    }
}
