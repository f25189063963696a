//! The emulator's layering, checked on its source: the domain modules speak no HTTP, and no
//! two top-level modules import each other, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules below the transports: IoT Hub's rules and storage, usable from HTTPS, AMQP and
/// MQTT alike (device sessions and method calls, the telemetry event log and jobs among
/// them).
const DOMAIN: [&str; 12] = [
    "clock",
    "error",
    "model",
    "twin",
    "store",
    "registry",
    "c2d",
    "query",
    "sessions",
    "events",
    "consumers",
    "jobs",
];

/// Names that mean an HTTP, web-framework or wire-protocol type.
const HTTP_MARKERS: [&str; 9] = [
    "axum",
    "hyper",
    "http::",
    "HeaderMap",
    "StatusCode",
    "rumqttc",
    "mqttbytes",
    "fe2o3",
    "tungstenite",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Top-level module of a file under `src/` (`registry/twins.rs` → `registry`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The top-level modules a source text names as `crate::<module>`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .filter_map(|(at, _)| {
            let rest = &text[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_lowercase()))
                .then(|| name.to_owned())
        })
        .collect()
}

/// Each top-level module's imports of other top-level modules.
type Imports = BTreeMap<String, BTreeSet<String>>;

/// The import graph and every source file with its text.
fn graph() -> Result<(Imports, Vec<(PathBuf, String)>), std::io::Error> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    let mut deps = Imports::new();
    let mut texts = Vec::new();
    for file in files {
        let Some(module) = top_module(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file)?;
        let refs = crate_refs(&text);
        deps.entry(module.clone())
            .or_default()
            .extend(refs.into_iter().filter(|r| *r != module));
        texts.push((file, text));
    }
    Ok((deps, texts))
}

#[test]
fn domain_modules_use_no_http_types() -> Result<(), Box<dyn std::error::Error>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (deps, texts) = graph()?;
    let mut found = Vec::new();
    for (file, text) in &texts {
        let Some(module) = top_module(&src, file) else {
            continue;
        };
        if !DOMAIN.contains(&module.as_str()) {
            continue;
        }
        for marker in HTTP_MARKERS {
            if text.contains(marker) {
                found.push(format!("{} mentions {marker}", file.display()));
            }
        }
        for dep in deps.get(&module).into_iter().flatten() {
            if !DOMAIN.contains(&dep.as_str()) {
                found.push(format!("{module} (domain) imports crate::{dep}"));
            }
        }
    }
    assert!(DOMAIN.iter().all(|m| deps.contains_key(*m)), "{deps:?}");
    assert!(found.is_empty(), "{found:#?}");
    Ok(())
}

#[test]
fn no_import_cycles_between_modules() -> Result<(), Box<dyn std::error::Error>> {
    let (deps, _) = graph()?;
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        node: &str,
        deps: &Imports,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in deps.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, deps, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in deps.keys() {
        let cycle = visit(node, &deps, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
    // The registry sits below the routes, never the other way round.
    assert!(deps.get("routes").is_some_and(|d| d.contains("registry")));
    Ok(())
}

#[test]
fn crate_refs_reads_module_names() {
    let refs = crate_refs("use crate::store::Store; let x = crate::c2d::Ack; // crate::Foo");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["c2d".to_owned(), "store".to_owned()]
    );
}
