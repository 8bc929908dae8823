#!/usr/bin/env bash
# Builds the kcl-emulator container image from a statically linked release binary.
#
#   kcl-emulator/docker/build-image.sh
#
# Tags the image `kcl-emulator:<crate version>` and `kcl-emulator:latest`. Needs a Rust
# toolchain and a Docker engine; pulls nothing (the image is `FROM scratch`). The binary is built
# in target/static so the regular build cache stays valid. The binary gets the modification time
# SOURCE_DATE_EPOCH (default 0), so the same source always gives the same image layer.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

image="kcl-emulator"
rust_target="x86_64-unknown-linux-gnu"
case "$(uname -m)" in
    aarch64 | arm64) rust_target="aarch64-unknown-linux-gnu" ;;
esac
target_dir="$root/target/static"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

# `cargo pkgid` prints e.g. `path+file:///.../kcl-emulator#0.1.0`.
pkgid="$(cargo pkgid -p kcl-emulator)"
version="${pkgid##*[#@]}"

echo "building the static kcl-emulator $version binary ($rust_target)"
# Static glibc, no debug info or symbols, and no build-machine paths in panic locations.
RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$root=/build --remap-path-prefix=$cargo_home=/cargo" \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release -p kcl-emulator --bin kcl-emulator \
    --target "$rust_target" --target-dir "$target_dir"
binary="$target_dir/$rust_target/release/kcl-emulator"

# `ldd` lists `lib => path` lines only for a dynamically linked executable.
if ldd "$binary" 2>&1 | grep -q "=>"; then
    echo "error: $binary is dynamically linked:" >&2
    ldd "$binary" >&2
    exit 1
fi

# The build context holds only the Dockerfile and the binary.
context="$target_dir/image-context"
rm -rf "$context"
mkdir -p "$context"
cp "$root/kcl-emulator/Dockerfile" "$context/Dockerfile"
cp "$binary" "$context/kcl-emulator"
chmod 0755 "$context/kcl-emulator"
chmod 0644 "$context/Dockerfile"
touch -d "@${SOURCE_DATE_EPOCH:-0}" "$context/kcl-emulator" "$context/Dockerfile"

echo "building image $image:$version"
docker build --build-arg "VERSION=$version" \
    --tag "$image:$version" --tag "$image:latest" "$context"
rm -rf "$context"

docker image ls "$image:$version"
