//! Which module may use which: the broker and the client tools share only the protocol's modules.
//!
//! Why: `cm-broker` is deployed alone and `cm` carries no SQLite (DESIGN.md §2), and a broker that calls client
//! code changes when a tool's output does. The rule is read off the source, `crate::NAME` by `crate::NAME`, so a
//! new import that breaks it fails here with the file and the module named.

use std::path::{Path, PathBuf};

/// The modules both sides may use. They themselves use only each other.
const SHARED: &[&str] = &[
    "error", "crypto", "wire", "time", "cron", "mention", "glob", "signal",
];

/// The client files that may reach into the broker, and the one item each may reach for (`None`: any).
/// `tools::broker` is `cm-broker`'s own tool; `up` (`cm up`) only needs where a broker keeps its data.
const CLIENT_INTO_BROKER: &[(&str, Option<&str>)] = &[
    ("src/tools/broker.rs", None),
    ("src/up.rs", Some("default_data_dir")),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module of a file under `src/`: `src/broker/net/mod.rs` is `broker`, `src/wire.rs` is `wire`.
fn module_of(rel: &str) -> &str {
    let rest = rel.strip_prefix("src/").unwrap_or(rel);
    let first = rest.split('/').next().unwrap_or(rest);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every path a file names through `crate::`, as (module, the rest of the path): `crate::wire::Push` and
/// `use crate::{wire::{self, Frame}, error::Result}` give `wire` and `error`.
fn crate_paths(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = &rest[..i];
        rest = &rest[i + "crate::".len()..];
        // `my_crate::x` and `other::crate::x` are not paths of this crate.
        if before.ends_with("::")
            || before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if !(c == ',' && depth == 1) {
                    item.push(c);
                }
            }
            items.push(item);
            for it in items {
                let it = it.trim();
                let name = ident(it);
                if !name.is_empty() && name != "self" {
                    let tail = it[name.len()..].trim_start_matches("::");
                    out.push((name.to_string(), tail.to_string()));
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                let tail = rest[name.len()..].strip_prefix("::").unwrap_or("");
                out.push((name.to_string(), ident(tail).to_string()));
            }
        }
    }
    out
}

fn files_under(dir: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root())
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, text)
        })
        .collect()
}

#[test]
fn the_broker_uses_only_the_shared_modules() {
    let mut wrong = Vec::new();
    for (rel, text) in files_under("src") {
        let module = module_of(&rel);
        let allowed: &[&str] = if module == "broker" {
            &["broker"]
        } else if SHARED.contains(&module) {
            &[]
        } else {
            continue;
        };
        for (name, _) in crate_paths(&text) {
            if name != module
                && !SHARED.contains(&name.as_str())
                && !allowed.contains(&name.as_str())
            {
                wrong.push(format!("{rel} uses crate::{name}"));
            }
        }
    }
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "the broker and the shared modules ({}) may use only the shared modules:\n{}",
        SHARED.join(", "),
        wrong.join("\n")
    );
}

#[test]
fn the_client_reaches_into_the_broker_only_where_it_must() {
    let mut wrong = Vec::new();
    for (rel, text) in files_under("src") {
        let module = module_of(&rel);
        if module == "broker" || module == "bin" || SHARED.contains(&module) {
            continue;
        }
        let allowed = CLIENT_INTO_BROKER.iter().find(|(f, _)| *f == rel);
        for (name, item) in crate_paths(&text) {
            let ok = name != "broker"
                || match allowed {
                    Some((_, None)) => true,
                    Some((_, Some(only))) => item == *only,
                    None => false,
                };
            if !ok {
                wrong.push(format!("{rel} uses crate::broker::{item}"));
            }
        }
    }
    for (rel, text) in files_under("src/bin") {
        if !rel.ends_with("cm-broker.rs") && text.contains("claudemesh::broker") {
            wrong.push(format!("{rel} uses claudemesh::broker"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The same rule seen from the linker: `cm` is built without the broker's SQLite, whose file header string every
/// SQLite library carries.
#[test]
fn cm_carries_no_sqlite() {
    let magic = b"SQLite format 3";
    let has = |exe: &str| {
        let bytes = std::fs::read(exe).unwrap_or_else(|e| panic!("{exe}: {e}"));
        bytes.windows(magic.len()).any(|w| w == magic)
    };
    assert!(
        has(env!("CARGO_BIN_EXE_cm-broker")),
        "the probe finds SQLite where it is"
    );
    assert!(!has(env!("CARGO_BIN_EXE_cm")), "cm links SQLite");
}

#[test]
fn imports_are_read_from_paths_and_groups() {
    let text = "use crate::{wire::{self, Frame}, error::Result};\nlet x = crate::broker::default_data_dir(a);\n\
                use crate::topics; // claudemesh::crate::no\n";
    let got = crate_paths(text);
    let names: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        names,
        [
            ("wire", "{self, Frame}"),
            ("error", "Result"),
            ("broker", "default_data_dir"),
            ("topics", "")
        ]
    );
    assert_eq!(module_of("src/broker/net/mod.rs"), "broker");
    assert_eq!(module_of("src/wire.rs"), "wire");
}

/// src/lib.rs's map names every module once, and no module that is not there.
#[test]
fn the_library_map_lists_every_module() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let mods: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    let rows: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! | [`")?.split('`').next())
        .collect();
    for m in &mods {
        assert_eq!(
            rows.iter().filter(|r| *r == m).count(),
            1,
            "src/lib.rs: module {m} needs one row in the map"
        );
    }
    for r in &rows {
        assert!(
            mods.contains(r),
            "src/lib.rs: the map names {r}, which is no module"
        );
    }
}
