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

/// The modules of the Kinesis service by layer, lowest first, checked the same way: the model
/// knows nothing of the channels and queues that depend on it, and they share the request
/// helpers with the stream actions rather than using the actions. The model does not use
/// `wire` either: its errors are mapped to what clients see in one place above it.
const KINESIS_LAYERS: &[&[&str]] = &[&["model"], &["request"], &["ext"], &["api"]];

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

/// The use tree that starts `text` (the part after `crate::` or `super::`): up to its end at
/// the first character no path or group can hold outside braces.
fn tree_text(text: &str) -> &str {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return &text[..at],
            '}' => depth -= 1,
            c if c.is_alphanumeric() || c == '_' || c == ':' || c == '*' => {}
            ',' | ' ' | '\n' | '\t' | '\r' if depth > 0 => {}
            _ if depth == 0 => return &text[..at],
            _ => {}
        }
    }
    text
}

/// Every path a use tree names, as segments: `a::{b, c::{d}}` gives `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        // `x as y` names `x`.
        let path = tree.split_whitespace().next().unwrap_or("");
        return vec![path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut paths = Vec::new();
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        for rest in expand(part) {
            // `{self, ..}` names the prefix itself.
            let rest = rest.into_iter().filter(|s| s != "self");
            paths.push(prefix.iter().cloned().chain(rest).collect());
        }
    }
    paths
}

/// The module path of the source file at `relative` (under `src`): `kinesis/api/mod.rs` is
/// `kinesis::api`, `kinesis/api/tags.rs` is `kinesis::api::tags`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut path: Vec<String> = relative
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .map(|s| s.trim_end_matches(".rs").to_owned())
        .collect();
    if path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

/// Whether the text before a match ends inside a longer path or name (`a::crate::`,
/// `mycrate::`), so the match does not start a path.
fn inside_a_path(before: &str) -> bool {
    before.ends_with("::") || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
}

/// Every path `source` names through `crate::`, including inside use groups.
fn crate_prefixed_paths(source: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        if !inside_a_path(&source[..at]) {
            found.extend(expand(tree_text(&source[at + "crate::".len()..])));
        }
    }
    found
}

/// Every crate path `source` (the file of module `module`) names, absolute: through `crate::`,
/// and through `super::` resolved against `module`, including inside use groups. Inline
/// modules (`mod tests { .. }`) are not tracked, so a `super::super::` inside one resolves a
/// level too high: write `crate::` paths there.
fn crate_paths(source: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = crate_prefixed_paths(source);
    for (at, _) in source.match_indices("super::") {
        if inside_a_path(&source[..at]) {
            continue;
        }
        let mut rest = &source[at..];
        let mut base = module.to_vec();
        while let Some(next) = rest.strip_prefix("super::") {
            base.pop();
            rest = next;
        }
        for path in expand(tree_text(rest)) {
            found.push(base.iter().cloned().chain(path).collect());
        }
    }
    found
}

/// The top-level modules `source` names through `crate::`, including inside `use crate::{..}`.
fn crate_references(source: &str) -> Vec<String> {
    crate_prefixed_paths(source)
        .into_iter()
        .filter_map(|path| path.into_iter().next())
        .collect()
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
fn kinesis_modules_only_use_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("kinesis"), &mut files);
    let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen_modules = 0;
    for file in files {
        let relative = file.strip_prefix(&src).expect("file is under src");
        let module = module_of(relative);
        let Some(own) = module.get(1) else {
            continue;
        };
        let own = KINESIS_LAYERS
            .iter()
            .position(|layer| layer.contains(&own.as_str()))
            .unwrap_or_else(|| panic!("kinesis module `{own}` is in no layer: add it"));
        seen_modules += 1;
        let source = std::fs::read_to_string(&file).expect("source is readable");
        for path in crate_paths(&source, &module) {
            // The model reports failures in its own terms; what a client sees is decided above.
            if module[1] == "model" && path.first().is_some_and(|top| top == "wire") {
                violations
                    .entry(relative.display().to_string())
                    .or_default()
                    .push("wire".to_owned());
            }
            let [top, used, ..] = path.as_slice() else {
                continue;
            };
            // Items of `kinesis` itself (the store alias) are not modules of a layer.
            if top != "kinesis" || used.starts_with(char::is_uppercase) || *used == module[1] {
                continue;
            }
            let theirs = KINESIS_LAYERS
                .iter()
                .position(|layer| layer.contains(&used.as_str()))
                .unwrap_or_else(|| panic!("{} uses unknown module `{used}`", file.display()));
            if theirs >= own {
                violations
                    .entry(relative.display().to_string())
                    .or_default()
                    .push(used.clone());
            }
        }
    }
    assert!(seen_modules > 20, "the scan found the sources");
    assert!(
        violations.is_empty(),
        "kinesis modules using a module of their own or a higher layer: {violations:#?}"
    );
}

#[test]
fn references_inside_use_groups_are_found() {
    assert_eq!(
        crate_references("use crate::{wire::ApiError, Config};\nlet x = crate::clock::now_ms();"),
        ["wire", "Config", "clock"]
    );
}

#[test]
fn nested_groups_and_super_paths_resolve_to_the_modules_they_name() {
    let module = ["kinesis".to_owned(), "ext".to_owned(), "queues".to_owned()];
    let paths = crate_paths(
        "use crate::kinesis::{api::validate::{a, b}, model::X as Y};\n\
         use super::super::api::tags;\nuse super::{lookup, self};",
        &module,
    );
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        [
            "kinesis::api::validate::a",
            "kinesis::api::validate::b",
            "kinesis::model::X",
            "kinesis::api::tags",
            "kinesis::ext::lookup",
            "kinesis::ext",
        ]
    );
}
