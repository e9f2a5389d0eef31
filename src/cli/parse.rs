//! Reading a command line against a [`Tool`]'s table, with lexopt.

use std::ffi::OsString;

use super::{Args, COMMON, Flag, Parsed, Sub, Tool, common_flags, runs_bare};
use crate::error::{Error, Result};

/// Parses `args` (without the program name) against `tool`'s table.
///
/// Flags may come before or after the subcommand. A usage error says what is wrong and how to find out more, on
/// one line: `unknown flag --jsn (did you mean --json?)`.
pub fn parse(tool: &'static Tool, args: impl IntoIterator<Item = OsString>) -> Result<Parsed> {
    use lexopt::Arg::{Long, Short, Value};
    let mut p = lexopt::Parser::from_args(args);
    let mut out = Args::default();
    let mut sub: Option<&'static Sub> = None;
    let mut bare = false;
    loop {
        let arg = match p.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(lexopt_error(tool, e)),
        };
        let (given, found) = match arg {
            Value(v) => {
                let v = utf8(v)?;
                if sub.is_none() && !bare && !tool.subs.is_empty() {
                    match find_sub(tool, &v) {
                        Ok(s) => {
                            sub = Some(s);
                            out.sub = Some(s.name);
                            continue;
                        }
                        // A tool with positionals of its own takes a first word that names no subcommand as the
                        // first of them (`cm-reserve src/**` beside `cm-reserve list`).
                        Err(_) if !tool.args.is_empty() => bare = true,
                        Err(e) => return Err(e),
                    }
                }
                out.positionals.push(v);
                if tool.trailing {
                    let rest = p.raw_args().map_err(|e| lexopt_error(tool, e))?;
                    for raw in rest {
                        out.positionals.push(utf8(raw)?);
                    }
                }
                continue;
            }
            Short(c) => (
                format!("-{c}"),
                find_flag(tool, sub, |f| f.short == Some(c)),
            ),
            Long(l) => (format!("--{l}"), find_flag(tool, sub, |f| f.long == l)),
        };
        let Some(f) = found else {
            return Err(unknown_flag(tool, sub, &given));
        };
        let value = match f.value {
            None => None,
            Some(_) if f.optional_value => p.optional_value().map(utf8).transpose()?,
            Some(name) => match p.value() {
                Ok(v) => Some(utf8(v)?),
                Err(_) => return Err(usage(tool, format!("missing {name} for {given}"))),
            },
        };
        match f.long {
            "help" if is_common(f) => return Ok(Parsed::Help),
            "version" if is_common(f) => return Ok(Parsed::Version),
            "json" if is_common(f) => out.json = true,
            "mesh" if is_common(f) => out.mesh = value,
            _ => {
                if !f.repeat {
                    out.flags.retain(|(l, _)| *l != f.long);
                }
                out.flags.push((f.long, value));
            }
        }
    }
    if let Some(s) = sub {
        // A flag given before the subcommand was looked up among every subcommand's flags.
        let own = |l: &str| tool.flags.iter().chain(s.flags).any(|f| f.long == l);
        if let Some((l, _)) = out.flags.iter().find(|(l, _)| !own(l)) {
            return Err(usage(
                tool,
                format!("--{l} does not apply to '{} {}'", tool.name, s.name),
            ));
        }
    } else if !tool.subs.is_empty() && runs_bare(tool) {
        // Without a subcommand only the tool's own flags apply.
        let own = |l: &str| tool.flags.iter().any(|f| f.long == l);
        if let Some((l, _)) = out.flags.iter().find(|(l, _)| !own(l)) {
            let with: Vec<&str> = tool
                .subs
                .iter()
                .filter(|s| s.flags.iter().any(|f| f.long == *l))
                .map(|s| s.name)
                .collect();
            return Err(usage(
                tool,
                format!(
                    "--{l} applies to '{} {}' only",
                    tool.name,
                    with.join("' and '")
                ),
            ));
        }
    } else if !tool.subs.is_empty() {
        let names: Vec<&str> = tool.subs.iter().map(|s| s.name).collect();
        return Err(usage(
            tool,
            format!("missing subcommand ({})", names.join(", ")),
        ));
    }
    let spec = sub.map_or(tool.args, |s| s.args);
    let n = out.positionals.len();
    if let Some(missing) = spec.iter().skip(n).find(|a| a.required) {
        return Err(usage(tool, format!("missing {}", missing.name)));
    }
    if n > spec.len() && !spec.iter().any(|a| a.many) {
        return Err(usage(
            tool,
            format!("unexpected argument \"{}\"", out.positionals[spec.len()]),
        ));
    }
    Ok(Parsed::Run(out))
}

fn is_common(f: &Flag) -> bool {
    COMMON.iter().any(|c| std::ptr::eq(c, f))
}

/// The flag `pred` picks: common flags first, then the subcommand's and the tool's. Before the subcommand is known,
/// every subcommand's flags are candidates.
fn find_flag(
    tool: &'static Tool,
    sub: Option<&'static Sub>,
    pred: impl Fn(&Flag) -> bool,
) -> Option<&'static Flag> {
    let subs: &'static [Sub] = sub.map_or(tool.subs, std::slice::from_ref);
    common_flags(tool)
        .iter()
        .chain(subs.iter().flat_map(|s| s.flags))
        .chain(tool.flags)
        .find(|f| pred(f))
}

fn find_sub(tool: &'static Tool, word: &str) -> Result<&'static Sub> {
    if let Some(s) = tool
        .subs
        .iter()
        .find(|s| s.name == word || s.aliases.contains(&word))
    {
        return Ok(s);
    }
    let names = tool
        .subs
        .iter()
        .flat_map(|s| std::iter::once(&s.name).chain(s.aliases))
        .copied();
    Err(match did_you_mean(word, names) {
        Some(m) => Error::usage(format!(
            "unknown subcommand \"{word}\" (did you mean \"{m}\"?)"
        )),
        None => usage(tool, format!("unknown subcommand \"{word}\"")),
    })
}

fn unknown_flag(tool: &'static Tool, sub: Option<&'static Sub>, given: &str) -> Error {
    let subs: &[Sub] = sub.map_or(tool.subs, std::slice::from_ref);
    let longs = common_flags(tool)
        .iter()
        .chain(subs.iter().flat_map(|s| s.flags))
        .chain(tool.flags);
    let guess = given
        .strip_prefix("--")
        .and_then(|w| did_you_mean(w, longs.map(|f| f.long)));
    match guess {
        Some(m) => Error::usage(format!("unknown flag {given} (did you mean --{m}?)")),
        None => usage(tool, format!("unknown flag {given}")),
    }
}

/// A usage error that points at `--help`.
fn usage(tool: &Tool, msg: String) -> Error {
    Error::usage(format!("{msg}; see '{} --help'", tool.name))
}

fn utf8(s: OsString) -> Result<String> {
    s.into_string().map_err(|s| {
        Error::usage(format!(
            "argument \"{}\" is not valid UTF-8",
            s.to_string_lossy()
        ))
    })
}

fn lexopt_error(tool: &Tool, e: lexopt::Error) -> Error {
    match e {
        lexopt::Error::UnexpectedValue { option, .. } => {
            usage(tool, format!("{option} takes no value"))
        }
        lexopt::Error::NonUnicodeValue(s) => utf8(s)
            .err()
            .unwrap_or_else(|| Error::usage("bad argument")),
        e => usage(tool, e.to_string()),
    }
}

/// The candidate closest to `word`, if one is close enough to be a likely typo (or starts with `word`).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    let len = word.chars().count();
    let max = if len <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &str)> = None;
    let mut prefix = None;
    for c in candidates {
        let lc = c.to_lowercase();
        let d = distance(&word, &lc);
        if d <= max && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
        if prefix.is_none() && len >= 2 && lc.starts_with(&word) {
            prefix = Some(c);
        }
    }
    best.map(|(_, c)| c).or(prefix)
}

/// Edit distance counting a swap of two neighbours as one edit, so `sned` is one away from `send`.
pub(super) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}
