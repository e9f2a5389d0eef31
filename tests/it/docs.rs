//! The checked-in man pages and shell completions match the flag tables.
//!
//! Each tool's `man/<name>.<section>`, `completions/bash/<name>`, `completions/zsh/_<name>` and
//! `completions/fish/<name>.fish` are made by `claudemesh::cli` from its [`Tool`]. After changing a flag table,
//! regenerate them with
//!
//! ```sh
//! CM_UPDATE_DOCS=1 cargo test --test it docs
//! ```
//!
//! and commit the result; without `CM_UPDATE_DOCS` the test fails on any difference.

use std::path::{Path, PathBuf};

use claudemesh::cli::{self, Tool};
use claudemesh::tools::ALL;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file of `tool`: (path under the repository, contents).
fn generated(tool: &Tool) -> Vec<(PathBuf, String)> {
    let n = tool.name;
    vec![
        (
            PathBuf::from(format!("man/{n}.{}", tool.section)),
            cli::man(tool, ALL),
        ),
        (
            PathBuf::from(format!("completions/bash/{n}")),
            cli::bash(tool),
        ),
        (
            PathBuf::from(format!("completions/zsh/_{n}")),
            cli::zsh(tool),
        ),
        (
            PathBuf::from(format!("completions/fish/{n}.fish")),
            cli::fish(tool),
        ),
    ]
}

#[test]
fn docs_match_the_flag_tables() {
    let update = std::env::var_os("CM_UPDATE_DOCS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for tool in ALL {
        for (rel, want) in generated(tool) {
            let path = root().join(&rel);
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            if have == want {
                continue;
            }
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, want).unwrap();
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (run CM_UPDATE_DOCS=1 cargo test --test it docs): {stale:?}"
    );
}

#[test]
fn every_tool_is_in_cm_or_a_binary_of_its_own() {
    let mut bins: Vec<String> = std::fs::read_dir(root().join("src/bin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    bins.sort();
    assert_eq!(bins, ["cm", "cm-broker"], "src/bin/*.rs");
    let mut held: Vec<&str> = claudemesh::multicall::TOOLS
        .iter()
        .map(|(t, _)| t.name)
        .collect();
    held.extend(["cm", "cm-broker"]);
    held.sort_unstable();
    let mut tools: Vec<&str> = ALL.iter().map(|t| t.name).collect();
    tools.sort_unstable();
    assert_eq!(
        held, tools,
        "multicall::TOOLS with cm and cm-broker, and tools::ALL, differ"
    );
}

#[test]
fn every_flag_is_in_its_man_page() {
    for tool in ALL {
        let man = cli::man(tool, ALL);
        let flags = tool
            .flags
            .iter()
            .chain(tool.subs.iter().flat_map(|s| s.flags))
            .chain(cli::common_flags(tool));
        for f in flags {
            let long = format!("\\fB\\-\\-{}\\fR", f.long.replace('-', "\\-"));
            assert!(
                man.contains(&long),
                "{}: --{} is not in the man page",
                tool.name,
                f.long
            );
            if let Some(c) = f.short {
                assert!(
                    man.contains(&format!("\\fB\\-{c}\\fR")),
                    "{}: -{c} is not in the man page",
                    tool.name
                );
            }
        }
        for s in tool.subs {
            assert!(
                man.contains(&format!("\\fB{}\\fR", s.name.replace('-', "\\-"))),
                "{}: {}",
                tool.name,
                s.name
            );
        }
    }
}

/// A common variable is described once, by the generator: a tool's own `env` does not list it again.
#[test]
fn the_common_environment_is_not_repeated() {
    for tool in ALL {
        for (var, _) in cli::common_env(tool) {
            assert!(
                !tool.env.iter().any(|(v, _)| v == var),
                "{}: {var} is in its env and in cli::common_env",
                tool.name
            );
        }
    }
}

#[test]
fn tool_names_are_unique() {
    let mut names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
}

/// Each completion script parses in its shell (`-n`: read, do not run). A shell that is not installed is skipped.
#[test]
fn completions_parse_in_their_shells() {
    for tool in ALL {
        let scripts = [
            ("bash", cli::bash(tool)),
            ("zsh", cli::zsh(tool)),
            ("fish", cli::fish(tool)),
        ];
        for (shell, script) in scripts {
            let Ok(o) = std::process::Command::new(shell)
                .args(["-n", "-c", &script])
                .output()
            else {
                continue;
            };
            // fish -n -c reports a syntax error on stderr but exits 0.
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "{shell} rejects the completion for {}: {}",
                tool.name,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
