//! The tunnel's length-prefixed JSON frames, as each side reads them from its peer: every
//! message type, frame after frame. Property: whatever decodes encodes again (within the frame
//! limit) and decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};
use wsgate::{
    fuzzing::now,
    session::messages::{read_frame, write_frame},
    wire::{Control, Open, Opened, Request},
};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the message type the reader expects; the rest is the stream.
    let Some((&kind, stream)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => frames::<Control>(stream),
        1 => frames::<Request>(stream),
        2 => frames::<Open>(stream),
        _ => frames::<Opened>(stream),
    }
});

/// Reads frames until the stream ends or breaks; each one must round-trip.
fn frames<T>(mut stream: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // Every frame takes at least its 4-byte length, so this ends.
    while let Ok(Some(message)) = now(read_frame::<_, T>(&mut stream)) {
        let mut encoded = Vec::new();
        now(write_frame(&mut encoded, &message)).expect("a message read is one we can send");
        let again: T = now(read_frame(&mut encoded.as_slice()))
            .expect("our own frame reads")
            .expect("our own frame is there");
        assert_eq!(again, message, "encode then decode changed the message");
    }
}
