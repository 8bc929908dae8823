#!/usr/bin/env bash
# Long fuzz runs: each target (or those named) for RUNS inputs (default 1,000,000), starting
# from the committed seeds in fuzz/corpus/<target>; what libFuzzer finds goes to the untracked
# fuzz/corpus-run/<target>, crashes to fuzz/artifacts/<target>. Needs nightly and cargo-fuzz
# (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
runs="${RUNS:-1000000}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(kinesis_json kinesis_cbor event_stream dynamodb_expressions)
fi
for target in "${targets[@]}"; do
    mkdir -p "corpus-run/$target"
    cargo +nightly fuzz run --release "$target" "corpus-run/$target" "corpus/$target" -- \
        -runs="$runs" -max_len=4096 -print_final_stats=1
done
