//! DynamoDB request bodies through the expression parser, placeholder checks and evaluator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kcl_emulator::fuzz_entry::dynamodb_expressions(data);
});
