//! Kinesis CBOR 1.1 request bodies: the first byte picks the operation, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kcl_emulator::fuzz_entry::kinesis_request(data, true);
});
