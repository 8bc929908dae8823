//! The emulator's top-level modules form layers: each may use only the modules below it, so
//! there are no import cycles between them and the module list in `lib.rs` reads top-down.
//! This test reads the sources and fails on a reference that goes up or sideways.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["config", "clock"],
    &["wire"],
    &["durable"],
    &["kinesis", "dynamodb"],
    &["http"],
    &["embedded", "testcontainers", "bench_support", "fuzz_entry"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `source` names through `crate::`, including inside `use crate::{..}`.
fn crate_references(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = part.trim().split("::").next().unwrap_or("");
                found.push(name.to_owned());
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn top_level_modules_only_use_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen_modules = 0;
    for file in files {
        let relative = file.strip_prefix(&src).expect("file is under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|name| name.trim_end_matches(".rs").to_owned())
            .expect("a file name");
        if top == "lib" || top == "main" {
            continue;
        }
        let own = layer_of(&top)
            .unwrap_or_else(|| panic!("module `{top}` is in no layer: add it to LAYERS"));
        seen_modules += 1;
        let source = std::fs::read_to_string(&file).expect("source is readable");
        for used in crate_references(&source) {
            // Re-exports at the crate root (`crate::Config`, `crate::ErrorKind`) are types of
            // the lowest layers.
            if used.is_empty() || used.starts_with(char::is_uppercase) || used == top {
                continue;
            }
            let theirs = layer_of(&used)
                .unwrap_or_else(|| panic!("{} uses unknown module `{used}`", file.display()));
            if theirs >= own {
                violations
                    .entry(relative.display().to_string())
                    .or_default()
                    .push(used);
            }
        }
    }
    assert!(seen_modules > 20, "the scan found the sources");
    assert!(
        violations.is_empty(),
        "modules using a module of their own or a higher layer: {violations:#?}"
    );
}

#[test]
fn references_inside_use_groups_are_found() {
    assert_eq!(
        crate_references("use crate::{wire::ApiError, Config};\nlet x = crate::clock::now_ms();"),
        ["wire", "Config", "clock"]
    );
}
