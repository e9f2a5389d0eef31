//! `--help` and `--version`.

use super::{Flag, Pos, Tool, common_flags};

/// `cm-send 0.1.0`.
pub fn version(tool: &Tool) -> String {
    format!("{} {}", tool.name, env!("CARGO_PKG_VERSION"))
}

/// `-p, --priority LEVEL` or `    --wait[=SECS]`.
fn label(f: &Flag) -> String {
    let mut s = match f.short {
        Some(c) => format!("-{c}, --{}", f.long),
        None => format!("    --{}", f.long),
    };
    match (f.value, f.optional_value) {
        (Some(v), true) => s += &format!("[={v}]"),
        (Some(v), false) => s += &format!(" {v}"),
        (None, _) => {}
    }
    s
}

/// ` TARGET [MESSAGE...]`.
fn pos_usage(args: &[Pos]) -> String {
    let mut s = String::new();
    for a in args {
        let dots = if a.many { "..." } else { "" };
        s += &if a.required {
            format!(" {}{dots}", a.name)
        } else {
            format!(" [{}{dots}]", a.name)
        };
    }
    s
}

/// Rows of `  label  text`, the text aligned in one column across every table of a help page.
fn rows(out: &mut String, rows: &[(String, &str)], width: usize) {
    for (l, text) in rows {
        if l.len() > width {
            *out += &format!("  {l}\n  {:width$}  {text}\n", "");
        } else {
            *out += &format!("  {l:width$}  {text}\n");
        }
    }
}

/// The `--help` text: usage, options, subcommands and examples.
pub fn help(tool: &Tool) -> String {
    let mut s = format!("{} - {}\n\n", tool.name, tool.about);
    if tool.subs.is_empty() {
        s += &format!("Usage: {} [OPTIONS]{}\n", tool.name, pos_usage(tool.args));
    } else {
        let bare = super::runs_bare(tool);
        if bare {
            s += &format!("Usage: {} [OPTIONS]{}\n", tool.name, pos_usage(tool.args));
        }
        for (i, sub) in tool.subs.iter().enumerate() {
            let lead = if i == 0 && !bare { "Usage:" } else { "      " };
            s += &format!(
                "{lead} {} {} [OPTIONS]{}\n",
                tool.name,
                sub.name,
                pos_usage(sub.args)
            );
        }
    }
    let flag_rows = |flags: &[Flag]| flags.iter().map(|f| (label(f), f.help)).collect::<Vec<_>>();
    let options = flag_rows(&[tool.flags, common_flags(tool)].concat());
    let subs: Vec<(String, &str)> = tool
        .subs
        .iter()
        .map(|s| ([&[s.name][..], s.aliases].concat().join(", "), s.about))
        .collect();
    let sub_options: Vec<(&str, Vec<(String, &str)>)> = tool
        .subs
        .iter()
        .filter(|s| !s.flags.is_empty())
        .map(|s| (s.name, flag_rows(s.flags)))
        .collect();
    let width = options
        .iter()
        .chain(&subs)
        .chain(sub_options.iter().flat_map(|(_, r)| r))
        .map(|(l, _)| l.len())
        .filter(|&n| n <= 28)
        .max()
        .unwrap_or(0);
    if !subs.is_empty() {
        s += "\nSubcommands:\n";
        rows(&mut s, &subs, width);
    }
    s += "\nOptions:\n";
    rows(&mut s, &options, width);
    for (name, r) in &sub_options {
        s += &format!("\nOptions for {name}:\n");
        rows(&mut s, r, width);
    }
    if !tool.examples.is_empty() {
        s += "\nExamples:\n";
        for e in tool.examples {
            s += &format!("  {}\n      {}\n", e.cmd, e.what);
        }
    }
    s
}
