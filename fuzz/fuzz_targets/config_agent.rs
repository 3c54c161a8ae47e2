//! The agent's TOML config as a user writes it, through parsing and validation
//! (`config::agent::parse`). Properties: it never panics; an error points at a line and column
//! inside the file and prints.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsgate::config::agent;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Err(error) = agent::parse("fuzz.toml", source, Path::new("/")) else {
        return;
    };
    if let Some(at) = &error.location {
        assert!(
            at.line >= 1 && at.line <= source.split('\n').count(),
            "{error:?}"
        );
        assert!(at.column >= 1, "{error:?}");
    }
    let _ = error.to_string();
});
