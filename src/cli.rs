//! Flag tables. Each tool declares one [`Tool`]: its positionals, flags and subcommands. That one table drives
//! argument parsing (with lexopt), `--help`, the man page and the bash, zsh and fish completions, so they cannot
//! drift apart; a test regenerates `man/` and `completions/` and fails on any difference.
//!
//! Every tool gets `-h/--help`, `--version` and `--json`, and `--mesh SLUG` unless it opts out.

use std::ffi::OsString;

use crate::error::{Code, Error, Result};
use crate::out::Out;

/// A tool: one binary's whole command-line surface.
pub struct Tool {
    /// The binary's name, `cm-send`.
    pub name: &'static str,
    /// One line: what it does (shown by `cm help` and in the man page's NAME).
    pub about: &'static str,
    /// The man page's DESCRIPTION: paragraphs separated by blank lines.
    pub description: &'static str,
    /// Man section: 1 for tools, 8 for `cm-broker`.
    pub section: u8,
    /// Positionals of the tool itself (when it has no subcommands).
    pub args: &'static [Pos],
    /// The tool's own flags (the common ones are added by the parser).
    pub flags: &'static [Flag],
    /// Subcommands (`cm-mesh new`, `cm-mesh list`, ...). Empty for tools without any.
    pub subs: &'static [Sub],
    /// Whether `--mesh SLUG` applies.
    pub mesh_flag: bool,
    /// Once the first positional is seen, take every later argument verbatim (for `cm VERB ARGS...`).
    pub trailing: bool,
    /// Examples for `--help` and the man page.
    pub examples: &'static [Example],
    /// Environment variables the tool reads, for the man page: (NAME, what it does).
    pub env: &'static [(&'static str, &'static str)],
}

/// What a tool does with its parsed arguments. Not a field of [`Tool`]: `cm` lists every tool's table, and a
/// function there would link every tool into it (the broker and SQLite included).
pub type Run = fn(&Args, &mut Out) -> Result<()>;

/// A subcommand with its own positionals and flags.
pub struct Sub {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub about: &'static str,
    pub args: &'static [Pos],
    pub flags: &'static [Flag],
}

/// A positional argument.
#[derive(Clone, Copy)]
pub struct Pos {
    pub name: &'static str,
    pub required: bool,
    /// Takes every remaining positional.
    pub many: bool,
    pub complete: Complete,
}

/// A flag: `-p/--priority LEVEL`.
#[derive(Clone, Copy)]
pub struct Flag {
    pub short: Option<char>,
    pub long: &'static str,
    /// The value's name (`LEVEL`); `None` for a switch.
    pub value: Option<&'static str>,
    /// The value may be left out (`--wait` or `--wait=30`).
    pub optional_value: bool,
    /// May be given more than once (`--tag a --tag b`).
    pub repeat: bool,
    pub help: &'static str,
    pub complete: Complete,
}

/// What a shell should offer when completing a value.
#[derive(Clone, Copy)]
pub enum Complete {
    Nothing,
    File,
    Dir,
    Values(&'static [&'static str]),
    /// Joined mesh slugs (`cm-mesh list --json`).
    Mesh,
    /// Peer names (`cm-peers --json`).
    Peer,
    /// Topic names (`cm-topic list --json`).
    Topic,
}

/// An example for `--help` and the man page.
pub struct Example {
    pub cmd: &'static str,
    pub what: &'static str,
}

/// A switch with no value: `flag("all", "include control-plane presences")`.
pub const fn flag(long: &'static str, help: &'static str) -> Flag {
    Flag {
        short: None,
        long,
        value: None,
        optional_value: false,
        repeat: false,
        help,
        complete: Complete::Nothing,
    }
}

impl Flag {
    pub const fn short(mut self, c: char) -> Flag {
        self.short = Some(c);
        self
    }
    /// The flag takes a value named `name`.
    pub const fn value(mut self, name: &'static str) -> Flag {
        self.value = Some(name);
        self
    }
    /// The flag's value may be left out.
    pub const fn optional(mut self) -> Flag {
        self.optional_value = true;
        self
    }
    pub const fn repeat(mut self) -> Flag {
        self.repeat = true;
        self
    }
    pub const fn complete(mut self, c: Complete) -> Flag {
        self.complete = c;
        self
    }
}

/// A required positional.
pub const fn pos(name: &'static str) -> Pos {
    Pos {
        name,
        required: true,
        many: false,
        complete: Complete::Nothing,
    }
}

impl Pos {
    pub const fn optional(mut self) -> Pos {
        self.required = false;
        self
    }
    pub const fn many(mut self) -> Pos {
        self.many = true;
        self
    }
    pub const fn complete(mut self, c: Complete) -> Pos {
        self.complete = c;
        self
    }
}

/// Parsed arguments.
#[derive(Debug, Default, Clone)]
pub struct Args {
    /// `--json` was given.
    pub json: bool,
    /// `--mesh SLUG`.
    pub mesh: Option<String>,
    /// The subcommand's name (its canonical name, not an alias).
    pub sub: Option<&'static str>,
    pub positionals: Vec<String>,
    /// Flags in the order given: (long name, value).
    pub flags: Vec<(&'static str, Option<String>)>,
}

impl Args {
    /// Whether the flag `long` was given.
    pub fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|(l, _)| *l == long)
    }
    /// The last value of `long`.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Every value of a repeated flag, in order.
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(l, _)| *l == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    /// The `i`th positional.
    pub fn pos(&self, i: usize) -> Option<&str> {
        self.positionals.get(i).map(String::as_str)
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// `-h/--help`: print [`help`].
    Help,
    /// `--version`: print [`version`].
    Version,
    /// Run the tool with these arguments.
    Run(Args),
}

/// The flags every tool takes; `--mesh` comes last so tools without it take a prefix.
static COMMON: [Flag; 4] = [
    flag("help", "print this help").short('h'),
    flag("version", "print the version"),
    flag("json", "write JSON Lines: one object per line"),
    flag("mesh", "use this mesh instead of the default one")
        .value("SLUG")
        .complete(Complete::Mesh),
];

/// The common flags that apply to `tool`: `-h/--help`, `--version`, `--json`, and `--mesh` when it takes one.
pub fn common_flags(tool: &Tool) -> &'static [Flag] {
    if tool.mesh_flag {
        &COMMON
    } else {
        &COMMON[..3]
    }
}

/// Parses `args` (without the program name) against `tool`'s table.
///
/// Flags may come before or after the subcommand. A usage error says what is wrong and how to find out more, on
/// one line: `unknown flag --jsn (did you mean --json?)`.
pub fn parse(tool: &'static Tool, args: impl IntoIterator<Item = OsString>) -> Result<Parsed> {
    use lexopt::Arg::{Long, Short, Value};
    let mut p = lexopt::Parser::from_args(args);
    let mut out = Args::default();
    let mut sub: Option<&'static Sub> = None;
    loop {
        let arg = match p.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(lexopt_error(tool, e)),
        };
        let (given, found) = match arg {
            Value(v) => {
                let v = utf8(v)?;
                if sub.is_none() && !tool.subs.is_empty() {
                    let s = find_sub(tool, &v)?;
                    sub = Some(s);
                    out.sub = Some(s.name);
                    continue;
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
fn distance(a: &str, b: &str) -> usize {
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
        for (i, sub) in tool.subs.iter().enumerate() {
            let lead = if i == 0 { "Usage:" } else { "      " };
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

/// Escapes text for roff: backslashes, hyphens (so they render as minus signs and copy-paste), and a leading
/// `.` or `'` on any line, which roff would take for a request.
fn roff(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `\fB\-p\fR, \fB\-\-priority\fR \fILEVEL\fR`.
fn man_label(f: &Flag) -> String {
    let mut s = String::new();
    if let Some(c) = f.short {
        s += &format!("\\fB{}\\fR, ", roff(&format!("-{c}")));
    }
    s += &format!("\\fB\\-\\-{}\\fR", roff(f.long));
    match (f.value, f.optional_value) {
        (Some(v), true) => s += &format!("[=\\fI{}\\fR]", roff(v)),
        (Some(v), false) => s += &format!(" \\fI{}\\fR", roff(v)),
        (None, _) => {}
    }
    s
}

fn man_pos(args: &[Pos]) -> String {
    let mut s = String::new();
    for a in args {
        let mut p = format!("\\fI{}\\fR", roff(a.name));
        if a.many {
            p += "...";
        }
        s += &if a.required {
            format!(" {p}")
        } else {
            format!(" [{p}]")
        };
    }
    s
}

fn man_flags(s: &mut String, flags: &[Flag]) {
    for f in flags {
        *s += &format!(".TP\n{}\n{}\n", man_label(f), roff(f.help));
    }
}

/// The exit codes every tool shares, as documented in the man pages.
fn exit_codes() -> [(i32, &'static str); 11] {
    [
        (0, "Success."),
        (
            Code::Generic.exit_status(),
            "A failure with no more specific code.",
        ),
        (
            Code::Auth.exit_status(),
            "Authentication failed, or an identity is needed and there is none.",
        ),
        (Code::Usage.exit_status(), "Bad arguments or flags."),
        (
            Code::Network.exit_status(),
            "The broker could not be reached, or the connection failed.",
        ),
        (
            Code::NotFound.exit_status(),
            "A named mesh, peer, topic or key does not exist.",
        ),
        (
            Code::Exists.exit_status(),
            "The thing to create exists already.",
        ),
        (
            Code::Permission.exit_status(),
            "Refused by permissions or policy.",
        ),
        (
            Code::Internal.exit_status(),
            "An internal error: please report it.",
        ),
        (
            Code::Unknown.exit_status(),
            "The outcome is unknown: the request went out and no answer came, so a message may have been \
             delivered. Send it again with the same --client-id to have it stored once.",
        ),
        (
            Code::Io.exit_status(),
            "A local file or directory could not be read or written.",
        ),
    ]
}

/// The man page, in roff, for section `tool.section`. No date, so it only changes when the table does.
pub fn man(tool: &Tool) -> String {
    let name = roff(tool.name);
    let mut s = format!(
        ".TH {} {} \"\" \"claudemesh {}\" \"claudemesh manual\"\n",
        roff(&tool.name.to_uppercase()),
        tool.section,
        env!("CARGO_PKG_VERSION")
    );
    s += &format!(".SH NAME\n{name} \\- {}\n", roff(tool.about));
    s += ".SH SYNOPSIS\n";
    if tool.subs.is_empty() {
        s += &format!("\\fB{name}\\fR [\\fIOPTIONS\\fR]{}\n", man_pos(tool.args));
    } else {
        let lines: Vec<String> = tool
            .subs
            .iter()
            .map(|sub| {
                format!(
                    "\\fB{name} {}\\fR [\\fIOPTIONS\\fR]{}\n",
                    roff(sub.name),
                    man_pos(sub.args)
                )
            })
            .collect();
        s += &lines.join(".br\n");
    }
    s += ".SH DESCRIPTION\n";
    let paragraphs: Vec<String> = tool
        .description
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(roff)
        .collect();
    s += &paragraphs.join("\n.PP\n");
    s += "\n";
    if !tool.subs.is_empty() {
        s += ".SH SUBCOMMANDS\n";
        for sub in tool.subs {
            let names: Vec<String> = std::iter::once(&sub.name)
                .chain(sub.aliases)
                .map(|n| format!("\\fB{}\\fR", roff(n)))
                .collect();
            s += &format!(
                ".TP\n{}{}\n{}\n",
                names.join(", "),
                man_pos(sub.args),
                roff(sub.about)
            );
            if !sub.flags.is_empty() {
                s += ".RS\n";
                man_flags(&mut s, sub.flags);
                s += ".RE\n";
            }
        }
    }
    s += ".SH OPTIONS\n";
    man_flags(&mut s, tool.flags);
    man_flags(&mut s, common_flags(tool));
    s += ".SH EXIT STATUS\n";
    for (code, what) in exit_codes() {
        s += &format!(".TP\n\\fB{code}\\fR\n{what}\n");
    }
    let config = (
        "CLAUDEMESH_CONFIG_DIR",
        "The configuration directory (default: ~/.claudemesh).",
    );
    let env: Vec<_> = (tool.section == 1)
        .then_some(config)
        .into_iter()
        .chain(tool.env.iter().copied())
        .collect();
    if !env.is_empty() {
        s += ".SH ENVIRONMENT\n";
        for (var, what) in env {
            s += &format!(".TP\n\\fB{}\\fR\n{}\n", roff(var), roff(what));
        }
    }
    if !tool.examples.is_empty() {
        s += ".SH EXAMPLES\n";
        for e in tool.examples {
            s += &format!(".TP\n\\fB{}\\fR\n{}\n", roff(e.cmd), roff(e.what));
        }
    }
    let mut see: Vec<&Tool> = crate::tools::ALL
        .iter()
        .copied()
        .filter(|t| t.name != tool.name)
        .collect();
    see.sort_by_key(|t| t.name);
    if !see.is_empty() {
        s += ".SH SEE ALSO\n";
        let refs: Vec<String> = see
            .iter()
            .map(|t| format!(".BR {} ({})", roff(t.name), t.section))
            .collect();
        s += &refs.join(",\n");
        s += "\n";
    }
    s
}

/// A tool's `main`: parses the command line, runs the tool, prints an error as one line on stderr and exits with
/// its code.
pub fn main(tool: &'static Tool, run: Run) -> ! {
    main_with(tool, run, std::env::args_os().skip(1))
}

/// [`main`] with `args` in place of the process's own (after the program name).
pub fn main_with(tool: &'static Tool, run: Run, args: impl IntoIterator<Item = OsString>) -> ! {
    crate::out::set_tool(tool.name);
    let status = match run_main(tool, run, args) {
        Ok(()) => 0,
        Err(e) => {
            crate::out::warn(tool.name, &e);
            e.code.exit_status()
        }
    };
    std::process::exit(status)
}

fn run_main(tool: &'static Tool, run: Run, args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let parsed = parse(tool, args)?;
    let mut out = Out::new(matches!(&parsed, Parsed::Run(a) if a.json));
    match parsed {
        Parsed::Help => out.line(help(tool).trim_end())?,
        Parsed::Version => out.line(version(tool))?,
        Parsed::Run(args) => run(&args, &mut out)?,
    }
    out.flush()
}

/// The shell commands behind dynamic completions: list meshes, peers or topics as JSON Lines and pull out one key
/// with awk (no jq needed). Failures print nothing, so a missing tool or broker just offers no candidates.
fn lookup(c: Complete) -> Option<(&'static str, &'static str)> {
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

/// Every flag `tool` takes anywhere: its own, each subcommand's, the common ones.
fn all_flags(tool: &Tool) -> impl Iterator<Item = &Flag> {
    tool.flags
        .iter()
        .chain(tool.subs.iter().flat_map(|s| s.flags))
        .chain(common_flags(tool))
}

/// The dynamic lookups `tool` needs, each once, in a fixed order.
fn lookups(tool: &Tool) -> Vec<(&'static str, &'static str)> {
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
fn words(f: &Flag) -> Vec<String> {
    f.short
        .map(|c| format!("-{c}"))
        .into_iter()
        .chain([format!("--{}", f.long)])
        .collect()
}

/// The words of every flag that takes a value in the next argument.
fn valued(flags: &[&Flag]) -> Vec<String> {
    let mut w: Vec<String> = flags
        .iter()
        .filter(|f| f.value.is_some() && !f.optional_value)
        .flat_map(|f| words(f))
        .collect();
    w.dedup();
    w
}

fn indent(s: &str, by: usize) -> String {
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

/// What bash runs to offer candidates of kind `c`, or `None` for nothing to offer.
fn bash_action(c: Complete) -> Option<String> {
    Some(match c {
        Complete::Nothing => return None,
        Complete::File => {
            r#"compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))"#.into()
        }
        Complete::Dir => {
            r#"compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))"#.into()
        }
        Complete::Values(v) => format!(r#"COMPREPLY=($(compgen -W "{}" -- "$cur"))"#, v.join(" ")),
        c => format!(
            r#"COMPREPLY=($(compgen -W "$(__claudemesh_{})" -- "$cur"))"#,
            lookup(c)?.0
        ),
    })
}

/// The bash completion script.
pub fn bash(tool: &Tool) -> String {
    let func = format!("_{}", tool.name.replace('-', "_"));
    let flags: Vec<&Flag> = all_flags(tool).collect();
    let mut s = format!("# bash completion for {}\n", tool.name);
    for (name, cmd) in lookups(tool) {
        s += &format!("\n__claudemesh_{name}() {{\n    {cmd}\n}}\n");
    }
    s += &format!("\n{func}() {{\n");
    s += "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n";
    s += "    local sub= n=0 skip= i\n";
    s += "    COMPREPLY=()\n";
    // Find the subcommand and count positionals before the cursor, skipping the values of flags.
    s += "    for ((i = 1; i < COMP_CWORD; i++)); do\n";
    if tool.trailing {
        s += "        ((n > 0)) && break\n";
    }
    s += "        if [[ -n $skip ]]; then\n            skip=\n            continue\n        fi\n";
    s += "        case ${COMP_WORDS[i]} in\n";
    let takes = valued(&flags);
    if !takes.is_empty() {
        s += &format!("            {}) skip=1 ;;\n", takes.join("|"));
    }
    s += "            -*) ;;\n";
    if tool.subs.is_empty() {
        s += "            *) n=$((n + 1)) ;;\n";
    } else {
        s += "            *)\n                if [[ -z $sub ]]; then\n                    case ${COMP_WORDS[i]} in\n";
        for sub in tool.subs {
            let names = [&[sub.name][..], sub.aliases].concat().join("|");
            s += &format!("                        {names}) sub={} ;;\n", sub.name);
        }
        s += "                        *) sub=- ;;\n                    esac\n";
        s += "                else\n                    n=$((n + 1))\n                fi\n                ;;\n";
    }
    s += "        esac\n    done\n";

    let mut mid = String::new();
    for f in flags
        .iter()
        .filter(|f| f.value.is_some() && !f.optional_value)
    {
        let action = bash_action(f.complete).map_or(String::new(), |a| format!("{a}; "));
        mid += &format!("    {}) {action}return ;;\n", words(f).join("|"));
    }
    if !mid.is_empty() {
        mid = format!("case $prev in\n{mid}esac\n");
    }
    let own: Vec<String> = tool
        .flags
        .iter()
        .chain(common_flags(tool))
        .flat_map(words)
        .collect();
    mid += "if [[ $cur == -* ]]; then\n";
    mid += &format!("    local flags=\"{}\"\n", own.join(" "));
    if tool.subs.iter().any(|s| !s.flags.is_empty()) {
        mid += "    case $sub in\n";
        for sub in tool.subs.iter().filter(|s| !s.flags.is_empty()) {
            let w: Vec<String> = sub.flags.iter().flat_map(words).collect();
            mid += &format!("        {}) flags+=\" {}\" ;;\n", sub.name, w.join(" "));
        }
        mid += "    esac\n";
    }
    mid += "    COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n    return\nfi\n";
    if !tool.subs.is_empty() {
        let names: Vec<&str> = tool
            .subs
            .iter()
            .flat_map(|s| std::iter::once(&s.name).chain(s.aliases))
            .copied()
            .collect();
        mid += &format!(
            "if [[ -z $sub ]]; then\n    COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n    return\nfi\n",
            names.join(" ")
        );
    }
    if tool.trailing {
        s += &format!("    if ((n == 0)); then\n{}    fi\n", indent(&mid, 8));
    } else {
        s += &indent(&mid, 4);
    }

    let mut arms = String::new();
    let sets: Vec<(&str, &[Pos])> = if tool.subs.is_empty() {
        vec![("", tool.args)]
    } else {
        tool.subs.iter().map(|s| (s.name, s.args)).collect()
    };
    for (sub, args) in sets {
        for (i, a) in args.iter().enumerate() {
            if let Some(action) = bash_action(a.complete) {
                let n = if a.many {
                    "*".to_string()
                } else {
                    i.to_string()
                };
                arms += &format!("        {sub}:{n}) {action} ;;\n");
            }
        }
    }
    if !arms.is_empty() {
        s += &format!("    case $sub:$n in\n{arms}    esac\n");
    }
    s += &format!("}}\n\ncomplete -F {func} {}\n", tool.name);
    s
}

/// Quotes `s` for the shell in single quotes (zsh and bash).
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What zsh's `_arguments` runs to offer candidates of kind `c`.
fn zsh_action(c: Complete) -> String {
    match c {
        Complete::Nothing => " ".into(),
        Complete::File => "_files".into(),
        Complete::Dir => "_files -/".into(),
        Complete::Values(v) => format!("({})", v.join(" ")),
        c => lookup(c).map_or(" ".into(), |(name, _)| format!("__claudemesh_{name}")),
    }
}

/// One `_arguments` spec for a flag: `'(-p --priority)'{-p+,--priority=}'[help]:LEVEL:(low next now)'`.
fn zsh_flag(f: &Flag) -> String {
    let help = f
        .help
        .replace('\\', r"\\")
        .replace('[', r"\[")
        .replace(']', r"\]");
    let (short_suffix, long_suffix) = match (f.value, f.optional_value) {
        (None, _) => ("", ""),
        (Some(_), false) => ("+", "="),
        (Some(_), true) => ("-", "=-"),
    };
    let arg = match f.value {
        None => String::new(),
        Some(v) => {
            let colons = if f.optional_value { "::" } else { ":" };
            format!("{colons}{v}:{}", zsh_action(f.complete))
        }
    };
    let tail = sq(&format!("[{help}]{arg}"));
    match f.short {
        Some(c) => {
            let excl = if f.repeat {
                "'*'".to_string()
            } else {
                format!("'(-{c} --{})'", f.long)
            };
            format!(
                "{excl}{{-{c}{short_suffix},--{}{long_suffix}}}{tail}",
                f.long
            )
        }
        None => {
            let star = if f.repeat { "'*'" } else { "" };
            format!("{star}--{}{long_suffix}{tail}", f.long)
        }
    }
}

/// `_arguments` specs for positionals.
fn zsh_pos(args: &[Pos]) -> Vec<String> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            let n = if a.many {
                "*".to_string()
            } else {
                (i + 1).to_string()
            };
            let colon = if a.required { ":" } else { "::" };
            sq(&format!("{n}{colon}{}:{}", a.name, zsh_action(a.complete)))
        })
        .collect()
}

/// The zsh completion script (`_cm-send`, for a directory on `$fpath`).
pub fn zsh(tool: &Tool) -> String {
    let func = format!("_{}", tool.name);
    let mut s = format!("#compdef {}\n", tool.name);
    for (name, cmd) in lookups(tool) {
        s += &format!(
            "\n__claudemesh_{name}() {{\n    local -a w\n    w=(${{(f)\"$({cmd})\"}})\n    compadd -a w\n}}\n"
        );
    }
    s += &format!("\n{func}() {{\n");
    s += "    local curcontext=$curcontext state line ret=1\n";
    s += "    local -a opts=(\n";
    for f in tool.flags.iter().chain(common_flags(tool)) {
        s += &format!("        {}\n", zsh_flag(f));
    }
    s += "    )\n";
    if tool.subs.is_empty() {
        let specs = zsh_pos(tool.args);
        // A trailing tool's flags end at its first positional.
        let stop = if tool.trailing { " -A '-*'" } else { "" };
        s += &format!(
            "    _arguments -s -S{stop} $opts {} && ret=0\n",
            specs.join(" ")
        );
    } else {
        s += "    _arguments -C -s -S $opts '1: :->sub' '*:: :->args' && ret=0\n";
        s += "    case $state in\n        sub)\n            local -a subs=(\n";
        for sub in tool.subs {
            for n in std::iter::once(&sub.name).chain(sub.aliases) {
                s += &format!("                {}\n", sq(&format!("{n}:{}", sub.about)));
            }
        }
        s += &format!(
            "            )\n            _describe -t commands {} subs && ret=0\n            ;;\n",
            sq(&format!("{} subcommand", tool.name))
        );
        s += "        args)\n            case $line[1] in\n";
        for sub in tool.subs {
            let names = [&[sub.name][..], sub.aliases].concat().join("|");
            let mut specs: Vec<String> = sub.flags.iter().map(zsh_flag).collect();
            specs.extend(zsh_pos(sub.args));
            s += &format!(
                "                {names})\n                    _arguments -s -S $opts {} && ret=0\n                    ;;\n",
                specs.join(" ")
            );
        }
        s += "            esac\n            ;;\n    esac\n";
    }
    s += "    return ret\n}\n\n";
    s += &format!("{func} \"$@\"\n");
    s
}

/// Quotes `s` for fish in single quotes.
fn fq(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

/// fish `complete` options offering candidates of kind `c`.
fn fish_action(c: Complete) -> String {
    match c {
        Complete::Nothing => String::new(),
        Complete::File => " -F".into(),
        Complete::Dir => " -a '(__fish_complete_directories)'".into(),
        Complete::Values(v) => format!(" -a {}", fq(&v.join(" "))),
        c => lookup(c).map_or(String::new(), |(name, _)| {
            format!(" -a '(__claudemesh_{name})'")
        }),
    }
}

fn fish_flag(f: &Flag) -> String {
    let mut s = String::new();
    if let Some(c) = f.short {
        s += &format!(" -s {c}");
    }
    s += &format!(" -l {}", f.long);
    if f.value.is_some() && !f.optional_value {
        s += if matches!(f.complete, Complete::File) {
            " -r"
        } else {
            " -x"
        };
        s += &fish_action(f.complete);
    }
    s + &format!(" -d {}", fq(f.help))
}

/// The fish completion script.
pub fn fish(tool: &Tool) -> String {
    let name = tool.name;
    let mut s = format!("# fish completion for {name}\n");
    for (n, cmd) in lookups(tool) {
        s += &format!("\nfunction __claudemesh_{n}\n    {cmd}\nend\n");
    }
    s += &format!("\ncomplete -c {name} -f\n");
    // A trailing tool's flags end at its first positional.
    let when = if tool.trailing {
        " -n __fish_use_subcommand"
    } else {
        ""
    };
    for f in tool.flags.iter().chain(common_flags(tool)) {
        s += &format!("complete -c {name}{when}{}\n", fish_flag(f));
    }
    let pos = |s: &mut String, cond: &str, args: &[Pos]| {
        for (i, a) in args.iter().enumerate() {
            let action = fish_action(a.complete);
            if action.is_empty() {
                continue;
            }
            // fish cannot count positionals; the first one is offered before any word, later ones after.
            let c = match (cond.is_empty(), i) {
                (true, 0) => "__fish_use_subcommand".to_string(),
                (true, _) => "not __fish_use_subcommand".to_string(),
                (false, _) => cond.to_string(),
            };
            *s += &format!("complete -c {name} -n {}{action}\n", fq(&c));
        }
    };
    if tool.subs.is_empty() {
        pos(&mut s, "", tool.args);
    } else {
        for sub in tool.subs {
            for n in std::iter::once(&sub.name).chain(sub.aliases) {
                s += &format!(
                    "complete -c {name} -n __fish_use_subcommand -a {n} -d {}\n",
                    fq(sub.about)
                );
            }
        }
        for sub in tool.subs {
            let cond = format!(
                "__fish_seen_subcommand_from {}",
                [&[sub.name][..], sub.aliases].concat().join(" ")
            );
            for f in sub.flags {
                s += &format!("complete -c {name} -n {}{}\n", fq(&cond), fish_flag(f));
            }
            pos(&mut s, &cond, sub.args);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    static SEND: Tool = Tool {
        name: "cm-send",
        about: "send a message",
        description: "Sends a message.\n\n.A line that starts with a dot, and a back\\slash.",
        section: 1,
        args: &[
            pos("TARGET").complete(Complete::Peer),
            pos("MESSAGE").many(),
        ],
        flags: &[
            flag("priority", "now, next or low")
                .short('p')
                .value("LEVEL")
                .complete(Complete::Values(&["now", "next", "low"])),
            flag("tag", "a tag [may repeat]").value("TAG").repeat(),
            flag("wait", "wait for a reply")
                .short('w')
                .value("SECS")
                .optional(),
            flag("all", "everyone").short('a'),
            flag("file", "attach 'a' file")
                .value("PATH")
                .complete(Complete::File),
        ],
        subs: &[],
        mesh_flag: true,
        trailing: false,
        examples: &[Example {
            cmd: "cm-send bob 'hi there'",
            what: "Say hi to bob.",
        }],
        env: &[],
    };

    static MESH: Tool = Tool {
        name: "cm-mesh",
        about: "manage meshes",
        description: "Manages meshes.",
        section: 1,
        args: &[],
        flags: &[flag("yes", "do not ask").short('y')],
        subs: &[
            Sub {
                name: "new",
                aliases: &["create"],
                about: "create a mesh",
                args: &[pos("NAME")],
                flags: &[flag("public", "anyone may join")],
            },
            Sub {
                name: "list",
                aliases: &["ls"],
                about: "list meshes",
                args: &[],
                flags: &[flag("remote", "ask the broker too").short('r')],
            },
        ],
        mesh_flag: false,
        trailing: false,
        examples: &[],
        env: &[("CM_X", "an example variable")],
    };

    static TRAIL: Tool = Tool {
        name: "cm",
        about: "front door",
        description: "Runs tools.",
        section: 1,
        args: &[pos("VERB").optional(), pos("ARGS").optional().many()],
        flags: &[],
        subs: &[],
        mesh_flag: true,
        trailing: true,
        examples: &[],
        env: &[],
    };

    fn go(tool: &'static Tool, args: &[&str]) -> Result<Parsed> {
        parse(tool, args.iter().map(OsString::from))
    }

    fn run(tool: &'static Tool, args: &[&str]) -> Args {
        match go(tool, args) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(tool: &'static Tool, args: &[&str]) -> String {
        match go(tool, args) {
            Err(e) => {
                assert_eq!(e.code, Code::Usage, "{e}");
                e.msg
            }
            Ok(p) => panic!("{args:?} parsed: {p:?}"),
        }
    }

    #[test]
    fn flags_and_positionals() {
        let a = run(
            &SEND,
            &[
                "--json",
                "bob",
                "-p",
                "now",
                "hello",
                "--mesh=dev",
                "world",
                "-a",
            ],
        );
        assert!(a.json);
        assert_eq!(a.mesh.as_deref(), Some("dev"));
        assert_eq!(a.positionals, ["bob", "hello", "world"]);
        assert_eq!(a.value("priority"), Some("now"));
        assert!(a.has("all"));
        assert_eq!(a.sub, None);
    }

    #[test]
    fn values_attached_and_repeated() {
        let a = run(
            &SEND,
            &[
                "-pnow",
                "--priority=low",
                "--tag",
                "a",
                "--tag=b",
                "bob",
                "hi",
            ],
        );
        assert_eq!(
            a.values("priority"),
            ["low"],
            "a flag given twice keeps the last"
        );
        assert_eq!(a.values("tag"), ["a", "b"]);
    }

    #[test]
    fn optional_values() {
        let a = run(&SEND, &["--wait", "bob", "hi"]);
        assert!(a.has("wait"));
        assert_eq!(a.value("wait"), None);
        assert_eq!(a.positionals, ["bob", "hi"]);
        let a = run(&SEND, &["--wait=30", "-w5", "bob", "hi"]);
        assert_eq!(a.value("wait"), Some("5"));
    }

    #[test]
    fn double_dash_ends_flags() {
        let a = run(&SEND, &["bob", "--", "--all", "-p"]);
        assert_eq!(a.positionals, ["bob", "--all", "-p"]);
        assert!(!a.has("all"));
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(go(&SEND, &["bob", "--help"]), Ok(Parsed::Help)));
        assert!(matches!(go(&SEND, &["-h"]), Ok(Parsed::Help)));
        assert!(matches!(go(&MESH, &["--version"]), Ok(Parsed::Version)));
        assert!(matches!(go(&MESH, &["new", "-h"]), Ok(Parsed::Help)));
    }

    #[test]
    fn usage_errors() {
        assert_eq!(
            err(&SEND, &["--jsn", "bob", "hi"]),
            "unknown flag --jsn (did you mean --json?)"
        );
        assert_eq!(
            err(&SEND, &["-x", "bob", "hi"]),
            "unknown flag -x; see 'cm-send --help'"
        );
        assert_eq!(err(&SEND, &[]), "missing TARGET; see 'cm-send --help'");
        assert_eq!(
            err(&SEND, &["bob"]),
            "missing MESSAGE; see 'cm-send --help'"
        );
        assert_eq!(
            err(&SEND, &["bob", "hi", "-p"]),
            "missing LEVEL for -p; see 'cm-send --help'"
        );
        assert_eq!(
            err(&SEND, &["--all=yes", "bob", "hi"]),
            "--all takes no value; see 'cm-send --help'"
        );
        assert_eq!(
            err(&MESH, &["list", "extra"]),
            "unexpected argument \"extra\"; see 'cm-mesh --help'"
        );
        assert_eq!(
            err(&MESH, &["--mesh", "x", "list"]),
            "unknown flag --mesh; see 'cm-mesh --help'"
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_is_a_usage_error() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'b', 0xff]);
        let e = parse(&SEND, [OsString::from("bob"), bad.clone()]).unwrap_err();
        assert_eq!(e.code, Code::Usage);
        assert!(e.msg.contains("not valid UTF-8"), "{}", e.msg);
        let e = parse(
            &SEND,
            [OsString::from("--priority"), bad, "bob".into(), "hi".into()],
        )
        .unwrap_err();
        assert_eq!(e.code, Code::Usage);
    }

    #[test]
    fn subcommands() {
        let a = run(&MESH, &["create", "dev", "--public"]);
        assert_eq!(a.sub, Some("new"));
        assert_eq!(a.positionals, ["dev"]);
        assert!(a.has("public"));
        // Flags before the subcommand, the tool's own among them.
        let a = run(&MESH, &["-y", "--public", "new", "dev"]);
        assert_eq!(a.sub, Some("new"));
        assert!(a.has("yes") && a.has("public"));
        let a = run(&MESH, &["ls", "-r", "--json"]);
        assert_eq!(a.sub, Some("list"));
        assert!(a.json && a.has("remote"));
    }

    #[test]
    fn subcommand_errors() {
        assert_eq!(
            err(&MESH, &["nwe", "dev"]),
            "unknown subcommand \"nwe\" (did you mean \"new\"?)"
        );
        assert_eq!(
            err(&MESH, &["zzz"]),
            "unknown subcommand \"zzz\"; see 'cm-mesh --help'"
        );
        assert_eq!(
            err(&MESH, &[]),
            "missing subcommand (new, list); see 'cm-mesh --help'"
        );
        assert_eq!(err(&MESH, &["new"]), "missing NAME; see 'cm-mesh --help'");
        assert_eq!(
            err(&MESH, &["list", "--public"]),
            "unknown flag --public; see 'cm-mesh --help'"
        );
        assert_eq!(
            err(&MESH, &["--public", "list"]),
            "--public does not apply to 'cm-mesh list'; see 'cm-mesh --help'"
        );
    }

    #[test]
    fn trailing_takes_everything_after_the_first_positional() {
        let a = run(
            &TRAIL,
            &["--json", "send", "--jsn", "-p", "now", "--", "--help"],
        );
        assert!(a.json);
        assert_eq!(
            a.positionals,
            ["send", "--jsn", "-p", "now", "--", "--help"]
        );
        let a = run(&TRAIL, &[]);
        assert!(a.positionals.is_empty());
        assert_eq!(
            err(&TRAIL, &["--jsn"]),
            "unknown flag --jsn (did you mean --json?)"
        );
    }

    #[test]
    fn suggestions() {
        let verbs = ["new", "send", "peers", "topic", "notifications"];
        assert_eq!(did_you_mean("sned", verbs), Some("send"));
        assert_eq!(did_you_mean("peer", verbs), Some("peers"));
        assert_eq!(did_you_mean("topc", verbs), Some("topic"));
        assert_eq!(did_you_mean("notif", verbs), Some("notifications"));
        assert_eq!(did_you_mean("bogus", verbs), None);
        assert_eq!(did_you_mean("x", verbs), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn help_text() {
        let h = help(&SEND);
        assert!(
            h.starts_with(
                "cm-send - send a message\n\nUsage: cm-send [OPTIONS] TARGET MESSAGE...\n"
            ),
            "{h}"
        );
        assert!(
            h.contains("  -p, --priority LEVEL  now, next or low\n"),
            "{h}"
        );
        assert!(
            h.contains("  -w, --wait[=SECS]     wait for a reply\n"),
            "{h}"
        );
        assert!(h.contains("      --mesh SLUG       "), "{h}");
        let h = help(&MESH);
        assert!(
            h.contains("Usage: cm-mesh new [OPTIONS] NAME\n       cm-mesh list [OPTIONS]\n"),
            "{h}"
        );
        assert!(h.contains("  new, create    create a mesh\n"), "{h}");
        assert!(h.contains("Options for list:\n  -r, --remote"), "{h}");
        assert!(!h.contains("--mesh"), "{h}");
        assert_eq!(
            version(&SEND),
            format!("cm-send {}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn man_page() {
        let m = man(&SEND);
        assert!(m.starts_with(".TH CM\\-SEND 1 \"\" \"claudemesh "), "{m}");
        assert!(
            m.contains(
                ".TP\n\\fB\\-p\\fR, \\fB\\-\\-priority\\fR \\fILEVEL\\fR\nnow, next or low\n"
            ),
            "{m}"
        );
        assert!(
            m.contains("\\fB\\-w\\fR, \\fB\\-\\-wait\\fR[=\\fISECS\\fR]"),
            "{m}"
        );
        assert!(
            m.contains("\n\\&.A line that starts with a dot, and a back\\eslash.\n"),
            "{m}"
        );
        assert!(
            m.contains("\\fB\\-\\-json\\fR") && m.contains("\\fB\\-\\-mesh\\fR \\fISLUG\\fR"),
            "{m}"
        );
        assert!(m.contains(".SH EXIT STATUS\n.TP\n\\fB0\\fR\n"), "{m}");
        assert!(m.contains("\\fB10\\fR\n"), "{m}");
        assert!(m.contains("\\fBCLAUDEMESH_CONFIG_DIR\\fR"), "{m}");
        assert!(
            m.contains(".SH EXAMPLES\n.TP\n\\fBcm\\-send bob 'hi there'\\fR\nSay hi to bob.\n"),
            "{m}"
        );
        assert!(m.contains(".SH SEE ALSO\n.BR cm (1)"), "{m}");
        assert!(!m.lines().any(|l| l.is_empty()), "no blank lines in roff");
        let m = man(&MESH);
        assert!(m.contains(".SH SUBCOMMANDS\n.TP\n\\fBnew\\fR, \\fBcreate\\fR \\fINAME\\fR\ncreate a mesh\n.RS\n"), "{m}");
        assert!(m.contains("\\fBCM_X\\fR\nan example variable"), "{m}");
        assert_eq!(m, man(&MESH), "deterministic");
    }

    #[test]
    fn completions_cover_every_flag() {
        for tool in [&SEND, &MESH, &TRAIL] {
            let (b, z, f) = (bash(tool), zsh(tool), fish(tool));
            for fl in all_flags(tool) {
                assert!(
                    b.contains(&format!("--{}", fl.long)),
                    "bash {}: --{}",
                    tool.name,
                    fl.long
                );
                assert!(
                    z.contains(&format!("--{}", fl.long)),
                    "zsh {}: --{}",
                    tool.name,
                    fl.long
                );
                assert!(
                    f.contains(&format!("-l {}", fl.long)),
                    "fish {}: --{}",
                    tool.name,
                    fl.long
                );
            }
            for s in tool.subs {
                assert!(b.contains(s.name) && z.contains(s.name) && f.contains(s.name));
            }
        }
        let b = bash(&SEND);
        assert!(
            b.contains("__claudemesh_peers() {\n    cm-peers --json 2>/dev/null | awk"),
            "{b}"
        );
        assert!(b.contains("compgen -W \"now next low\""), "{b}");
        let z = zsh(&SEND);
        assert!(
            z.contains(
                "'(-p --priority)'{-p+,--priority=}'[now, next or low]:LEVEL:(now next low)'"
            ),
            "{z}"
        );
        assert!(
            z.contains("'*'--tag='[a tag \\[may repeat\\]]:TAG: '"),
            "{z}"
        );
        let f = fish(&SEND);
        assert!(
            f.contains("complete -c cm-send -l file -r -F -d 'attach \\'a\\' file'"),
            "{f}"
        );
        assert!(f.contains("-a '(__claudemesh_meshes)'"), "{f}");
    }
}
