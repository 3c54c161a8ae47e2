//! The gateway's TOML config as a user writes it, through parsing and validation
//! (`config::validate::gateway`). Properties: it never panics; an error points at a line and
//! column inside the file and prints; a config accepted prints its route table.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsgate::config::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // Base `/`: paths in the file (`etc/hostname`) are checked to exist, never read.
    match validate::gateway("fuzz.toml", source, Path::new("/")) {
        Ok(config) => {
            if let Ok(routes) = wsgate::gateway::assemble::routes(&config.routes) {
                let _ = wsgate::router::table(&routes);
            }
        }
        Err(error) => wsgate::fuzzing::assert_located(&error, source),
    }
});
