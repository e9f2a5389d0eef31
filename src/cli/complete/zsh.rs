//! The zsh completion script.

use super::super::{Complete, Flag, Pos, Tool, Verb, common_flags};
use super::{lookup, lookups, sq, verbs};

/// What zsh's `_arguments` runs to offer candidates of kind `c`.
fn zsh_action(c: Complete) -> String {
    match c {
        Complete::Nothing => " ".into(),
        Complete::File => "_files".into(),
        Complete::Dir => "_files -/".into(),
        Complete::Values(v) => format!("({})", v.join(" ")),
        Complete::Verbs(_) => "__claudemesh_delegate".into(),
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
    if let Some(v) = verbs(tool) {
        s += &delegate(v);
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
            "            )\n            _describe -t commands {} subs && ret=0\n",
            sq(&format!("{} subcommand", tool.name))
        );
        // Beside subcommands, the tool's own first positional is offered too.
        if let Some(a) = tool.args.first() {
            match a.complete {
                Complete::Nothing => {}
                Complete::Values(v) => {
                    s += &format!("            compadd -- {} && ret=0\n", v.join(" "))
                }
                c => s += &format!("            {} && ret=0\n", zsh_action(c)),
            }
        }
        s += "            ;;\n";
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
        if !tool.args.is_empty() {
            // The first word named no subcommand: it and what follows are the tool's own positionals.
            let mut specs: Vec<String> = tool.flags.iter().map(zsh_flag).collect();
            specs.extend(zsh_pos(tool.args));
            s += &format!(
                "                *)\n                    _arguments -s -S $opts {} && ret=0\n                    ;;\n",
                specs.join(" ")
            );
        }
        s += "            esac\n            ;;\n    esac\n";
    }
    s += "    return ret\n}\n\n";
    s += &format!("{func} \"$@\"\n");
    s
}

/// `__claudemesh_delegate`: with `words` the verb and what follows it, completes them as the verb's tool does
/// (`_normal` on its command line).
fn delegate(verbs: &[Verb]) -> String {
    let mut s =
        String::from("\n__claudemesh_delegate() {\n    local tool sub\n    case $words[1] in\n");
    for v in verbs {
        let sub = v.sub.map_or(String::new(), |x| format!(" sub={x}"));
        s += &format!("        {}) tool={}{sub} ;;\n", v.names.join("|"), v.tool);
    }
    s += r#"        *) _files; return ;;
    esac
    if [[ -n $sub ]]; then
        words=($tool $sub $words[2,-1])
        (( CURRENT++ ))
    else
        words[1]=$tool
    fi
    _normal
}
"#;
    s
}
