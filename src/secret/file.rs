//! Files that hold secrets (agent tokens, websockify tokens, TLS private keys): a warning when
//! group or others may read them, as ssh warns about a private key. A warning, not an error:
//! the operator may have reasons (a group-shared deployment), but should know.

use std::{os::unix::fs::PermissionsExt, path::Path};

use crate::log_escape::Escaped;

/// The permission bits of `path` when group or others have any access to it (`mode & 0o077`),
/// else `None`; `None` too when it cannot be read (reading it will say why).
pub(crate) fn exposed_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// The warning for a file of kind `what` (`token file`) with `mode`.
pub fn warning(what: &str, path: &Path, mode: u32) -> String {
    let path = Escaped(path.display());
    format!("{what} {path} is readable by others (mode {mode:04o}); chmod 600 it")
}

/// Logs the warning if `path` is open to group or others. For a directory (websockify reads
/// every file in one), each file in it is checked.
pub(crate) fn warn_if_exposed(what: &str, path: &Path) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for file in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            warn_if_exposed(what, &file);
        }
        return;
    }
    if let Some(mode) = exposed_mode(path) {
        tracing::warn!("{}", warning(what, path, mode));
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use super::*;

    #[test]
    fn modes_open_to_group_or_others_are_flagged() {
        let dir = std::env::temp_dir().join(format!("wsgate-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "t0ken\n").unwrap();
        let cases = [
            (0o600, None),
            (0o400, None),
            (0o644, Some(0o644)),
            (0o640, Some(0o640)),
            (0o602, Some(0o602)),
        ];
        for (mode, expected) in cases {
            std::fs::set_permissions(&file, Permissions::from_mode(mode)).unwrap();
            assert_eq!(exposed_mode(&file), expected, "mode {mode:o}");
        }
        assert_eq!(exposed_mode(&dir.join("absent")), None);
        assert_eq!(
            warning("token file", &file, 0o644),
            format!(
                "token file {} is readable by others (mode 0644); chmod 600 it",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
