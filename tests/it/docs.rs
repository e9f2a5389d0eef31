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
//!
//! The other tests read the committed files as a user gets them, not the generator's output: the flags each
//! man page documents are fed to the real parser, and compared both ways with what the parser's table and the
//! real binary's `--help` say it takes; the completion scripts must offer exactly the documented flags.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use claudemesh::cli::{self, Tool};
use claudemesh::tools::ALL;

use crate::harness::bin;

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

/// How a documented flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Takes {
    Nothing,
    Value,
    /// `--wait[=SECS]`.
    Optional,
}

/// A flag as a page documents it, under its subcommand (`None`: the tool's own, or a common one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Documented {
    sub: Option<String>,
    long: String,
    short: Option<char>,
    takes: Takes,
}

/// The flag a label names: `-p, --priority LEVEL`, `--wait[=SECS]`, `--json`.
fn label_flag(label: &str) -> Option<(String, Option<char>, Takes)> {
    let label = label.trim();
    let (short, rest) = match label.strip_prefix('-') {
        Some(r) if !r.starts_with('-') => {
            let c = r.chars().next()?;
            (Some(c), r[c.len_utf8()..].strip_prefix(", ")?)
        }
        _ => (None, label),
    };
    let rest = rest.strip_prefix("--")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    let (long, tail) = rest.split_at(end);
    let takes = if tail.starts_with("[=") {
        Takes::Optional
    } else if tail.starts_with(' ') && tail.len() > 1 {
        Takes::Value
    } else {
        Takes::Nothing
    };
    Some((long.to_string(), short, takes))
}

/// The flags a committed man page documents: each `.TP` label under OPTIONS, and under each subcommand's
/// `.RS` block in SUBCOMMANDS.
fn man_flags(page: &str) -> BTreeSet<Documented> {
    let unroff = |s: &str| {
        s.replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "")
    };
    let (mut section, mut sub, mut nested, mut label) = ("", None::<String>, false, false);
    let mut found = BTreeSet::new();
    for line in page.lines() {
        if let Some(s) = line.strip_prefix(".SH ") {
            (section, sub, nested) = (s, None, false);
            continue;
        }
        match line {
            ".TP" => label = true,
            ".RS" => nested = true,
            ".RE" => nested = false,
            _ if std::mem::take(&mut label) => {
                let text = unroff(line);
                let under = match section {
                    "OPTIONS" => None,
                    "SUBCOMMANDS" if nested => sub.clone(),
                    "SUBCOMMANDS" => {
                        sub = text.split([',', ' ']).next().map(str::to_string);
                        continue;
                    }
                    _ => continue,
                };
                if let Some((long, short, takes)) = label_flag(&text) {
                    found.insert(Documented {
                        sub: under,
                        long,
                        short,
                        takes,
                    });
                }
            }
            _ => {}
        }
    }
    found
}

/// The flags a `--help` text lists, under `Options:` and `Options for SUB:`.
fn help_flags(help: &str) -> BTreeSet<Documented> {
    let (mut sub, mut options) = (None, false);
    let mut found = BTreeSet::new();
    for line in help.lines() {
        if line == "Options:" {
            (sub, options) = (None, true);
        } else if let Some(s) = line
            .strip_prefix("Options for ")
            .and_then(|s| s.strip_suffix(':'))
        {
            (sub, options) = (Some(s.to_string()), true);
        } else if !line.starts_with(' ') {
            options = false;
        } else if options {
            let label = line.trim_start().split("  ").next().unwrap_or_default();
            if let Some((long, short, takes)) = label_flag(label) {
                found.insert(Documented {
                    sub: sub.clone(),
                    long,
                    short,
                    takes,
                });
            }
        }
    }
    found
}

/// The flags `tool`'s parser takes, from the table it parses with.
fn table_flags(tool: &Tool) -> BTreeSet<Documented> {
    let of = |sub: Option<&str>, f: &cli::Flag| Documented {
        sub: sub.map(str::to_string),
        long: f.long.to_string(),
        short: f.short,
        takes: match (f.value, f.optional_value) {
            (None, _) => Takes::Nothing,
            (Some(_), false) => Takes::Value,
            (Some(_), true) => Takes::Optional,
        },
    };
    let own = tool
        .flags
        .iter()
        .chain(cli::common_flags(tool))
        .map(|f| of(None, f));
    let subs = tool
        .subs
        .iter()
        .flat_map(|s| s.flags.iter().map(move |f| of(Some(s.name), f)));
    own.chain(subs).collect()
}

/// What a committed page says and what the program does, one set against the other.
fn differ(what: &str, page: &BTreeSet<Documented>, real: &BTreeSet<Documented>) -> Option<String> {
    let only = |a: &BTreeSet<Documented>, b: &BTreeSet<Documented>| -> Vec<String> {
        a.difference(b).map(|d| format!("{d:?}")).collect()
    };
    let (missing, extra) = (only(real, page), only(page, real));
    (!missing.is_empty() || !extra.is_empty()).then(|| {
        format!("{what}: not documented: {missing:?}; documented but not taken: {extra:?}")
    })
}

/// Whether parsing failed on the flag itself rather than on what is missing around it.
fn flag_error(msg: &str) -> bool {
    ["unknown flag", "takes no value", " for -", "does not apply"]
        .iter()
        .any(|m| msg.contains(m))
}

/// Every flag a committed man page documents is one the real parser takes, with the value the page says, and
/// every flag the parser takes (as its table says, and as the real binary's `--help` lists) is on the page.
#[test]
fn the_man_pages_document_exactly_the_flags_the_tools_take() {
    let mut wrong = Vec::new();
    for tool in ALL {
        let rel = format!("man/{}.{}", tool.name, tool.section);
        let page = std::fs::read_to_string(root().join(&rel)).unwrap();
        let documented = man_flags(&page);
        assert!(!documented.is_empty(), "{rel}: no flags found");
        let help = std::process::Command::new(bin(tool.name))
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{} --help", tool.name);
        let help = help_flags(&String::from_utf8_lossy(&help.stdout));
        wrong.extend(differ(
            &format!("{rel} against {} --help", tool.name),
            &documented,
            &help,
        ));
        wrong.extend(differ(
            &format!("{rel} against its parser"),
            &documented,
            &table_flags(tool),
        ));
        for d in &documented {
            let spellings =
                std::iter::once(format!("--{}", d.long)).chain(d.short.map(|c| format!("-{c}")));
            for flag in spellings {
                let parse = |extra: &[&str]| {
                    let argv = d
                        .sub
                        .iter()
                        .map(String::as_str)
                        .chain([flag.as_str()])
                        .chain(extra.iter().copied());
                    cli::parse(tool, argv.map(OsString::from).collect::<Vec<_>>())
                };
                let taken = match d.takes {
                    Takes::Nothing | Takes::Optional => parse(&[]),
                    Takes::Value => parse(&["1"]),
                };
                if let Err(e) = taken
                    && flag_error(&e.msg)
                {
                    wrong.push(format!("{rel}: {} {flag}: {}", tool.name, e.msg));
                }
                // The value the page shows or leaves out is the one the parser wants.
                let arity = match d.takes {
                    Takes::Nothing if flag.starts_with("--") => Some(parse_eq(tool, d, &flag)),
                    Takes::Value => Some(parse(&[])),
                    _ => None,
                };
                if let Some(Ok(_)) = arity {
                    wrong.push(format!(
                        "{rel}: {} {flag}: the page has its value wrong",
                        tool.name
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `--flag=1` for a switch, which the parser must refuse.
fn parse_eq(
    tool: &'static Tool,
    d: &Documented,
    flag: &str,
) -> claudemesh::error::Result<cli::Parsed> {
    let argv = d.sub.iter().cloned().chain([format!("{flag}=1")]);
    cli::parse(tool, argv.map(OsString::from).collect::<Vec<_>>()).and_then(|p| match p {
        cli::Parsed::Run(_) => Ok(p),
        // --help=1 and --version=1 end parsing before the value is looked at; nothing to learn there.
        other => Err(claudemesh::error::Error::usage(format!("{other:?}"))),
    })
}

/// The long and short flags a completion script offers (`bash`, `zsh` or `fish`), as `--long` and `-s`.
fn offered(shell: &str, script: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut word = |w: &str| {
        let name = w.trim_start_matches('-');
        let end = name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(name.len());
        if end > 0 {
            let dashes = if w.starts_with("--") { "--" } else { "-" };
            found.insert(format!("{dashes}{}", &name[..end]));
        }
    };
    match shell {
        "bash" => {
            for line in script.lines() {
                let Some((_, rest)) = line
                    .split_once("flags=\"")
                    .or_else(|| line.split_once("flags+=\""))
                else {
                    continue;
                };
                rest.split('"')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .for_each(&mut word);
            }
        }
        "zsh" => {
            let mut opts = false;
            for line in script.lines() {
                let t = line.trim();
                if t == "local -a opts=(" {
                    opts = true;
                    continue;
                }
                if t == ")" {
                    opts = false;
                }
                if !(opts || t.starts_with("_arguments -s -S $opts")) {
                    continue;
                }
                for (i, _) in t.match_indices("--") {
                    word(&t[i..]);
                }
                for (i, _) in t.match_indices("{-") {
                    word(&t[i + 1..]);
                }
            }
        }
        _ => {
            for line in script.lines().filter(|l| l.starts_with("complete -c")) {
                let w: Vec<&str> = line.split_whitespace().collect();
                for pair in w.windows(2) {
                    match pair[0] {
                        "-l" => word(&format!("--{}", pair[1])),
                        "-s" => word(&format!("-{}", pair[1])),
                        _ => {}
                    }
                }
            }
        }
    }
    found
}

/// The committed completion scripts offer every flag the man page documents, and no other.
#[test]
fn the_completions_offer_the_documented_flags() {
    let mut wrong = Vec::new();
    for tool in ALL {
        let n = tool.name;
        let page =
            std::fs::read_to_string(root().join(format!("man/{n}.{}", tool.section))).unwrap();
        let documented: BTreeSet<String> = man_flags(&page)
            .into_iter()
            .flat_map(|d| {
                std::iter::once(format!("--{}", d.long)).chain(d.short.map(|c| format!("-{c}")))
            })
            .collect();
        for (shell, rel) in [
            ("bash", format!("completions/bash/{n}")),
            ("zsh", format!("completions/zsh/_{n}")),
            ("fish", format!("completions/fish/{n}.fish")),
        ] {
            let script = std::fs::read_to_string(root().join(&rel)).unwrap();
            let offers = offered(shell, &script);
            let missing: Vec<_> = documented.difference(&offers).collect();
            let extra: Vec<_> = offers.difference(&documented).collect();
            if !missing.is_empty() || !extra.is_empty() {
                wrong.push(format!(
                    "{rel}: not offered {missing:?}; offered but not documented {extra:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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
