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
    if let Err(error) = agent::parse("fuzz.toml", source, Path::new("/")) {
        wsgate::fuzzing::assert_located(&error, source);
    }
});
