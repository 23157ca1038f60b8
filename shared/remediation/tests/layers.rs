//! Issue 27: the shared crates' layers point one way. Each module of `src/` has a rank; a module
//! may name (`crate::<module>`, or `super::…` reaching the crate root) only modules of a lower
//! rank. The pure core (model, policy, prices, costs, identity, inventory shapes) is the
//! `finops-core` crate below all of them, and the checks (`finops-checks`: detectors, rule runs,
//! actions) above: between crates the compiler holds the line (the core has no AWS SDK to call,
//! nor anything of this crate; this crate has no check module to import).

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom to top.
const RANKS: &[(&str, u8)] = &[
    // The core's modules, re-exported here under their old names.
    ("approval", 0),
    ("cost", 0),
    ("evidence", 0),
    ("identity", 0),
    ("ids", 0),
    ("inventory", 0),
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
    ("notify", 5),
    ("slack", 6),
    ("jira", 7),
    // The flow, and what runs it.
    ("flow", 7),
    ("org", 8),
    ("decide", 9),
    ("config", 9),
];

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

/// `code` without its comments (line and block) and string literals, so words in them are not
/// taken for paths.
fn without_comments_and_strings(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// The first name of each path in `group` (the inside of `{…}`), nested groups included.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                heads.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    heads.push(ident(&group[start..]));
    heads
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect()
}

/// The inside of the `{…}` group `s` starts with (`s` without its opening brace).
fn group(s: &str) -> &str {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s
}

/// The crate-root modules `code` names: through `crate::`, and through `climb` × `super::`
/// (what reaches the crate root from its file).
fn named_modules(code: &str, climb: usize) -> Vec<String> {
    let word_start = |at: usize| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let up = "super::".repeat(climb);
    let mut ends: Vec<usize> = code
        .match_indices("crate::")
        .filter(|(at, _)| word_start(*at))
        .map(|(at, m)| at + m.len())
        .collect();
    if climb > 0 {
        ends.extend(
            code.match_indices(up.as_str())
                .filter(|(at, _)| word_start(*at))
                .map(|(at, m)| at + m.len())
                .filter(|end| !code[*end..].starts_with("super::")),
        );
    }
    ends.sort_unstable();
    let mut names = Vec::new();
    for end in ends {
        let rest = &code[end..];
        match rest.strip_prefix('{') {
            Some(inner) => names.extend(group_heads(group(inner))),
            None => names.push(ident(rest)),
        }
    }
    names
}

/// Every import of the crate whose sources are `src` that runs back up, or names a module without
/// a rank (a module not in `ranks` has rank `others`, when given).
fn imports_that_run_back_up(src: &Path, ranks: &[(&str, u8)], others: Option<u8>) -> (Vec<String>, Vec<String>) {
    let ranks: BTreeMap<&str, u8> = ranks.iter().copied().collect();
    let rank_of = |m: &str| ranks.get(m).copied().or(others);
    let mut all = Vec::new();
    files(src, &mut all);
    let mut upward = Vec::new();
    let mut unranked = Vec::new();
    for file in &all {
        let rel = file.strip_prefix(src).expect("under src");
        let module = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        if module == "lib" {
            continue;
        }
        let Some(rank) = rank_of(module.as_str()) else {
            unranked.push(module);
            continue;
        };
        let text = without_comments_and_strings(&std::fs::read_to_string(file).expect("readable"));
        // The unit tests at the end of a file may reach anywhere.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        // From `src/a.rs` or `src/a/mod.rs` one `super::` is the root; from `src/a/b.rs`, two.
        let depth = rel.components().count() - 1;
        let climb = if rel.file_name().is_some_and(|f| f == "mod.rs") {
            depth
        } else {
            depth + 1
        };
        for name in named_modules(code, climb) {
            if name == module || name.is_empty() {
                continue;
            }
            match rank_of(name.as_str()) {
                Some(to) if to < rank => {}
                Some(to) => upward.push(format!("{} (rank {rank}) names {name} (rank {to})", rel.display())),
                None => unranked.push(format!("{name} (named in {})", rel.display())),
            }
        }
    }
    unranked.sort();
    unranked.dedup();
    upward.sort();
    upward.dedup();
    (upward, unranked)
}

/// Fails on any import of the crate at `dir` (beside this one) that runs back up, or names a
/// module without a rank.
fn assert_points_down(dir: &str, ranks: &[(&str, u8)], others: Option<u8>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let (upward, unranked) = imports_that_run_back_up(&src, ranks, others);
    assert!(
        unranked.is_empty(),
        "modules without a rank (give each one): {unranked:?}"
    );
    assert!(upward.is_empty(), "imports that run back up:\n{}", upward.join("\n"));
}

#[test]
fn every_import_in_the_shared_crate_points_down() {
    assert_points_down("src", RANKS, None);
}

/// The pure core's own layers, bottom to top: what a finding is does not depend on which checks
/// there are (the checks crate, above both crates, names them).
const CORE_RANKS: &[(&str, u8)] = &[
    ("error", 0),
    ("ids", 0),
    ("pricing", 0),
    ("cost", 0),
    ("approval", 1),
    ("identity", 2),
    ("policy", 3),
    ("model", 4),
    ("inventory", 5),
    ("evidence", 5),
];

#[test]
fn every_import_in_the_core_points_down() {
    assert_points_down("../finops-core/src", CORE_RANKS, None);
}

/// The checks crate: a check names no other check but idle-ec2 (tag-compliance takes its stop,
/// rightsizing keeps its guards); the executor and the permissions gather the actions. Every
/// other module is a check (rank 1): a new one needs no line here.
const CHECKS_RANKS: &[(&str, u8)] = &[("idle_ec2", 0), ("executor", 2), ("permissions", 2)];

#[test]
fn every_import_in_the_checks_crate_points_down() {
    assert_points_down("../checks/src", CHECKS_RANKS, Some(1));
}

#[test]
fn the_layer_check_reads_what_rust_reads() {
    let code = without_comments_and_strings(
        "use crate::{model::{A, B}, flow::x};\n// crate::slack in a comment\nlet s = \"crate::org\";\nuse super::super::decide;\n",
    );
    let names = named_modules(&code, 2);
    assert_eq!(names, ["model", "flow", "decide"], "{code}");
    // One `super::` from a file two folders down is not the root.
    assert!(named_modules("use super::guards;", 2).is_empty());
    assert_eq!(named_modules("use super::flow;", 1), ["flow"]);
    assert!(named_modules("use finops_crate::flow;", 1).is_empty());
}
