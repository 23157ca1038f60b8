//! Issue 27: the shared crate's layers point one way. Each module of `src/` has a rank; a module
//! may name (`crate::<module>`) only modules of a lower rank. The pure core (model, policy,
//! prices, costs, identity, the detectors) is the `finops-core` crate below all of them, where the
//! compiler holds the line (it has no AWS SDK and no async runtime to call).

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom to top.
const RANKS: &[(&str, u8)] = &[
    // The core's modules, re-exported here under their old names.
    ("approval", 0),
    ("cost", 0),
    ("detect", 0),
    ("identity", 0),
    ("ids", 0),
    ("model", 0),
    ("policy", 0),
    ("pricing", 0),
    ("error", 0),
    // Adapters: AWS, HTTP, secrets, the invocation's deadline, logs.
    ("deadline", 1),
    ("telemetry", 1),
    ("http", 1),
    ("secrets", 1),
    ("aws", 1),
    ("events", 2),
    ("oidc", 2),
    // State.
    ("state", 3),
    // Actions; what the weekly report and the organisation digest add up.
    ("act", 4),
    ("report", 4),
    ("digest", 4),
    // The messages and their renderers.
    ("permissions", 5),
    ("notify", 5),
    ("slack", 6),
    ("jira", 7),
    // The flow, and what runs it.
    ("flow", 7),
    ("rules", 8),
    ("org", 8),
    ("decide", 9),
    ("config", 9),
];

fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_in_the_shared_crate_points_down() {
    let ranks: BTreeMap<&str, u8> = RANKS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut upward = Vec::new();
    let mut unranked = Vec::new();
    for file in &all {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(&rank) = ranks.get(module.as_str()) else {
            unranked.push(module);
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable");
        // Test modules may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        };
        let mut names = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            match rest.strip_prefix('{') {
                // `crate::{a::X, b}`: each path's first name.
                Some(group) => {
                    let group = group.split('}').next().unwrap_or_default();
                    names.extend(group.split(',').map(ident));
                }
                None => names.push(ident(rest)),
            }
        }
        for name in names {
            if name == module || name.is_empty() {
                continue;
            }
            match ranks.get(name.as_str()) {
                Some(&to) if to < rank => {}
                Some(&to) => upward.push(format!(
                    "{} (rank {rank}) names crate::{name} (rank {to})",
                    file.strip_prefix(&src).unwrap_or(file).display()
                )),
                None => unranked.push(name),
            }
        }
    }
    unranked.sort();
    unranked.dedup();
    assert!(
        unranked.is_empty(),
        "modules without a rank (give each one): {unranked:?}"
    );
    upward.sort();
    upward.dedup();
    assert!(upward.is_empty(), "imports that run back up:\n{}", upward.join("\n"));
}
