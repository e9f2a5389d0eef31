//! Man pages, in roff.

use super::{Flag, Pos, Tool, common_env, common_flags};
use crate::error::Code;

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
fn exit_codes() -> [(i32, &'static str); 15] {
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
        (
            Code::Conflict.exit_status(),
            "A compare-and-set lost: the key changed since it was read (cm-state --if-version). Read it again.",
        ),
        (
            Code::Unsupported.exit_status(),
            "The broker does not have what was asked (an original claudemesh broker lacks some of cm-broker's \
             additions); nothing was done.",
        ),
        (
            Code::Reserved.exit_status(),
            "A path is reserved by another member (cm-reserve); the holder and the reason are on stderr.",
        ),
        (
            Code::Interrupted.exit_status(),
            "Stopped by Ctrl-C (SIGINT), after closing what it had open.",
        ),
    ]
}

/// The man page, in roff, for section `tool.section`. No date, so it only changes when the table does. SEE ALSO
/// names every other tool of `toolkit`.
pub fn man(tool: &Tool, toolkit: &[&Tool]) -> String {
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
        let bare = super::runs_bare(tool)
            .then(|| format!("\\fB{name}\\fR [\\fIOPTIONS\\fR]{}\n", man_pos(tool.args)));
        let lines: Vec<String> = bare
            .into_iter()
            .chain(tool.subs.iter().map(|sub| {
                format!(
                    "\\fB{name} {}\\fR [\\fIOPTIONS\\fR]{}\n",
                    roff(sub.name),
                    man_pos(sub.args)
                )
            }))
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
    let env: Vec<_> = common_env(tool).iter().chain(tool.env).copied().collect();
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
    let mut see: Vec<&Tool> = toolkit
        .iter()
        .copied()
        .filter(|t| t.name != tool.name)
        .collect();
    see.sort_by_key(|t| t.name);
    let (pages, files) = see_also_outside(tool);
    if !see.is_empty() || !pages.is_empty() {
        s += ".SH SEE ALSO\n";
        let refs: Vec<String> = see
            .iter()
            .map(|t| (t.name, t.section))
            .chain(pages.iter().copied())
            .map(|(name, section)| format!(".BR {} ({})", roff(name), section))
            .collect();
        s += &refs.join(",\n");
        s += "\n";
        if !files.is_empty() {
            s += &format!(".PP\n{}\n", roff(files));
        }
    }
    s
}

/// Pages beyond the toolkit that a tool's SEE ALSO names, and the files of the source tree it points to.
fn see_also_outside(tool: &Tool) -> (&'static [(&'static str, u8)], &'static str) {
    match tool.name {
        "cm-broker" => (
            &[("systemd.service", 5), ("systemd.exec", 5)],
            "contrib/systemd/cm-broker.service in the source tree: a hardened unit (DynamicUser, StateDirectory, \
             ProtectSystem=strict, NoNewPrivileges) whose reload sends SIGHUP. docs/deploy.md: TLS, the clients' CA \
             file, reverse proxies, the unit, /health and /metrics.",
        ),
        _ => (&[], ""),
    }
}
