//! The bash completion script.

use super::super::{Complete, Flag, Pos, Tool, Verb, all_flags, common_flags};
use super::{indent, lookup, lookups, valued, verbs, words};

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
        // The loop that counted positionals stopped just past the verb.
        Complete::Verbs(_) => "__claudemesh_delegate $((i - 1))".into(),
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
    if let Some(v) = verbs(tool) {
        s += &delegate(v);
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
        // Beside subcommands, the tool's own first positional is offered too.
        let own = tool
            .args
            .first()
            .and_then(|a| bash_action(a.complete))
            .map_or(String::new(), |a| format!("    {a}\n"));
        let op = if own.is_empty() { "=" } else { "+=" };
        mid += &format!(
            "if [[ -z $sub ]]; then\n{own}    COMPREPLY{op}($(compgen -W \"{}\" -- \"$cur\"))\n    return\nfi\n",
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
        // `-`: the first word named no subcommand, so it began the tool's own positionals.
        std::iter::once(("-", tool.args))
            .chain(tool.subs.iter().map(|s| (s.name, s.args)))
            .collect()
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

/// `__claudemesh_delegate V`: completes the line from the verb at `COMP_WORDS[V]` on as the verb's tool does,
/// loading that tool's completion (bash-completion loads it by name) and rewriting the words to its command line.
fn delegate(verbs: &[Verb]) -> String {
    let mut s = String::from(
        "\n__claudemesh_delegate() {\n    local v=$1 tool= sub= s=0\n    case ${COMP_WORDS[v]} in\n",
    );
    for v in verbs {
        let sub = v.sub.map_or(String::new(), |x| format!(" sub={x}"));
        s += &format!("        {}) tool={}{sub} ;;\n", v.names.join("|"), v.tool);
    }
    s += r#"        *)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
            return
            ;;
    esac
    local fn=_${tool//-/_}
    if ! declare -F "$fn" >/dev/null; then
        _comp_load "$tool" 2>/dev/null || __load_completion "$tool" 2>/dev/null ||
            _completion_loader "$tool" 2>/dev/null
    fi
    declare -F "$fn" >/dev/null || return 0
    [[ -n $sub ]] && s=1
    local -a words=("$tool" ${sub:+"$sub"} "${COMP_WORDS[@]:v+1}")
    COMP_WORDS=("${words[@]}")
    COMP_CWORD=$((COMP_CWORD - v + s))
    "$fn"
}
"#;
    s
}
