//! SubscribeToShard event-stream frames: encode records built from the input, decode them as
//! clients do and compare; then decode the input itself as a frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kcl_emulator::fuzz_entry::event_stream(data);
});
