//! Flag tables. Each tool declares one [`Tool`]: its positionals, flags and subcommands. That one table drives
//! argument parsing (with lexopt), `--help`, the man page and the bash, zsh and fish completions, so they cannot
//! drift apart; a test regenerates `man/` and `completions/` and fails on any difference.
//!
//! Every tool gets `-h/--help`, `--version` and `--json`, and `--mesh SLUG` unless it opts out, and the man page
//! describes the environment variables they share ([`common_env`]).
//!
//! A tool names each of its flags as a `const` [`Flag`] and uses that one value twice: in its table, and in its run
//! function to read what was given (`args.value(&PRIORITY)`, `args.get::<Priority>(&PRIORITY)?`). A misspelt
//! flag is then a compile error, not a `None` at run time; [`Args`] offers no lookup by name.
//!
//! [`parse`] reads a command line against the table; [`help`], [`man`] and [`bash`], [`zsh`] and [`fish`] write
//! what a user reads from the same table. None of them knows the tools: [`man`] is handed the toolkit's list for
//! its SEE ALSO, so this module depends on nothing in `tools`.

use std::ffi::OsString;
use std::fmt::Display;
use std::str::FromStr;

use crate::error::{Code, Error, Result};
use crate::out::Out;

mod complete;
mod help;
mod man;
mod parse;
#[cfg(test)]
mod tests;

pub use complete::{bash, fish, zsh};
pub use help::{help, version};
pub use man::man;
pub use parse::{did_you_mean, parse};

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
    /// Positionals of the tool itself: all it takes when it has no subcommands; beside subcommands, what a first
    /// word that names none of them starts (`cm-reserve PATH...` and `cm-reserve list`), with the tool's own flags
    /// alone.
    pub args: &'static [Pos],
    /// The tool's own flags (the common ones are added by the parser).
    pub flags: &'static [Flag],
    /// Subcommands (`cm-mesh new`, `cm-mesh list`, ...). Empty for tools without any.
    pub subs: &'static [Sub],
    /// Whether `--mesh SLUG` applies.
    pub mesh_flag: bool,
    /// Whether the tool reads the config directory: its man page then describes `CLAUDEMESH_CONFIG_DIR`
    /// ([`common_env`]), so the tool's own `env` lists only its own variables.
    pub config_dir: bool,
    /// Once the first positional is seen, take every later argument verbatim (for `cm VERB ARGS...`).
    pub trailing: bool,
    /// Examples for `--help` and the man page.
    pub examples: &'static [Example],
    /// Environment variables the tool reads, for the man page: (NAME, what it does). The common ones
    /// ([`common_env`]) are added by the generator.
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
    /// A verb and its arguments, completed as the tool behind the verb completes them (`cm topic <TAB>` as
    /// `cm-topic <TAB>`); anything else as a file.
    Verbs(&'static [Verb]),
}

/// A verb of `cm`: the names it answers to, the tool that does it, and the subcommand that tool is given first.
pub struct Verb {
    /// The verb and its aliases, the main name first.
    pub names: &'static [&'static str],
    /// The tool that does it, `cm-mesh`.
    pub tool: &'static str,
    /// The tool's subcommand, `new`, when the verb names one.
    pub sub: Option<&'static str>,
    /// The subcommand given when the arguments name none of the tool's (the original's `cm notifications`).
    pub fallback: Option<&'static str>,
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
    /// Flags in the order given: (long name, value). Private, so a flag is only ever looked up through its
    /// [`Flag`] (`args.value(&PRIORITY)`): a misspelt name fails to compile instead of reading as absent.
    flags: Vec<(&'static str, Option<String>)>,
}

impl Args {
    /// Whether `flag` was given.
    pub fn has(&self, flag: &Flag) -> bool {
        self.flags.iter().any(|(l, _)| *l == flag.long)
    }
    /// The last value of `flag`.
    pub fn value(&self, flag: &Flag) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(l, _)| *l == flag.long)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Every value of a repeated `flag`, in order.
    pub fn values(&self, flag: &Flag) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(l, _)| *l == flag.long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    /// The last value of `flag`, parsed: a value that does not parse is a usage error (exit status 3) that
    /// names the flag on one line: `--priority: unknown priority "soon" (expected now, next or low)`.
    pub fn get<T>(&self, flag: &Flag) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.value(flag)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| Error::usage(format!("--{}: {e}", flag.long)))
            })
            .transpose()
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
/// The config directory's variable and the TLS trust ones, described once for every tool that reads them.
static CONFIG_DIR_ENV: [(&str, &str); 3] = [
    (
        "CLAUDEMESH_CONFIG_DIR",
        "The configuration directory (default: ~/.claudemesh).",
    ),
    (
        "CLAUDEMESH_CA_FILE",
        "A PEM file of CA certificates trusted for wss:// brokers besides the web's roots: a broker on a \
         private CA or a self-signed certificate (per broker: cm login URL --ca-file FILE).",
    ),
    (
        "SSL_CERT_FILE",
        "Read as CLAUDEMESH_CA_FILE is, as other TLS clients read it.",
    ),
];

/// The environment variables every tool like `tool` reads, before its own `env`: the config directory's when it
/// reads one.
pub fn common_env(tool: &Tool) -> &'static [(&'static str, &'static str)] {
    if tool.config_dir {
        &CONFIG_DIR_ENV
    } else {
        &[]
    }
}

/// Whether `tool`, which has subcommands, also runs without one: when it has positionals of its own
/// (`cm-reserve PATH...` beside `cm-reserve list`), or when it is a daemon (man section 8: `cm-broker` serves,
/// `cm-broker copy-store` copies its store). Its own flags alone apply then.
fn runs_bare(tool: &Tool) -> bool {
    !tool.args.is_empty() || tool.section == 8
}

/// Every flag `tool` takes anywhere: its own, each subcommand's, the common ones.
fn all_flags(tool: &Tool) -> impl Iterator<Item = &Flag> {
    tool.flags
        .iter()
        .chain(tool.subs.iter().flat_map(|s| s.flags))
        .chain(common_flags(tool))
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
        Err(e) if e.code == Code::Interrupted => e.code.exit_status(),
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
