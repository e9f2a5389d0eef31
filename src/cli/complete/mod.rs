//! Shell completions: bash, zsh and fish scripts, one per tool, with dynamic lookups of meshes, peers and topics.

use super::{Complete, Flag, Tool, Verb, all_flags};

mod bash;
mod fish;
mod zsh;

pub use bash::bash;
pub use fish::fish;
pub use zsh::zsh;

/// The shell commands behind dynamic completions: list meshes, peers or topics as JSON Lines and pull out one key
/// with awk (no jq needed). Failures print nothing, so a missing tool or broker just offers no candidates.
pub(super) fn lookup(c: Complete) -> Option<(&'static str, &'static str)> {
    match c {
        Complete::Mesh => Some((
            "meshes",
            r#"cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'"#,
        )),
        Complete::Peer => Some((
            "peers",
            r#"cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'"#,
        )),
        Complete::Topic => Some((
            "topics",
            r#"cm-topic list --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'"#,
        )),
        _ => None,
    }
}

/// The verbs whose tools complete the rest of `tool`'s line, if a positional of it says so (`cm`).
pub(super) fn verbs(tool: &Tool) -> Option<&'static [Verb]> {
    tool.args
        .iter()
        .chain(tool.subs.iter().flat_map(|s| s.args))
        .find_map(|a| match a.complete {
            Complete::Verbs(v) => Some(v),
            _ => None,
        })
}

/// The dynamic lookups `tool` needs, each once, in a fixed order.
pub(super) fn lookups(tool: &Tool) -> Vec<(&'static str, &'static str)> {
    let kinds = all_flags(tool).map(|f| f.complete).chain(
        tool.args
            .iter()
            .chain(tool.subs.iter().flat_map(|s| s.args))
            .map(|a| a.complete),
    );
    let mut found: Vec<_> = kinds.filter_map(lookup).collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// `-p --priority`.
pub(super) fn words(f: &Flag) -> Vec<String> {
    f.short
        .map(|c| format!("-{c}"))
        .into_iter()
        .chain([format!("--{}", f.long)])
        .collect()
}

/// The words of every flag that takes a value in the next argument.
pub(super) fn valued(flags: &[&Flag]) -> Vec<String> {
    let mut w: Vec<String> = flags
        .iter()
        .filter(|f| f.value.is_some() && !f.optional_value)
        .flat_map(|f| words(f))
        .collect();
    w.dedup();
    w
}

pub(super) fn indent(s: &str, by: usize) -> String {
    s.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{:by$}{l}\n", "")
            }
        })
        .collect()
}

/// Quotes `s` for the shell in single quotes (zsh and bash).
pub(super) fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
