//! The fish completion script.

use super::super::{Complete, Flag, Pos, Tool, Verb, common_flags};
use super::{lookup, lookups, verbs};

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
        Complete::Verbs(_) => " -a '(__claudemesh_delegate)'".into(),
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
    if let Some(v) = verbs(tool) {
        s += &delegate(v);
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
        // Beside subcommands, the tool's own positionals: before any word, and after a first word that named no
        // subcommand.
        let names: Vec<&str> = tool
            .subs
            .iter()
            .flat_map(|s| std::iter::once(&s.name).chain(s.aliases))
            .copied()
            .collect();
        let bare = format!("not __fish_seen_subcommand_from {}", names.join(" "));
        for a in tool.args {
            let action = fish_action(a.complete);
            if !action.is_empty() {
                s += &format!("complete -c {name} -n {}{action}\n", fq(&bare));
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

/// `__claudemesh_delegate`: completes the words after the verb as the verb's tool does (`complete -C` on its
/// command line), or as files for a verb it does not know.
fn delegate(verbs: &[Verb]) -> String {
    let mut s = String::from(
        r#"
function __claudemesh_delegate
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l i 2
    while test $i -le (count $words)
        switch $words[$i]
            case --mesh
                set i (math $i + 2)
            case '-*'
                set i (math $i + 1)
            case '*'
                break
        end
    end
    if test $i -gt (count $words)
        return
    end
    set -l rest $words[$i..-1]
    set -e rest[1]
    set -l tool
    set -l sub
    switch $words[$i]
"#,
    );
    for v in verbs {
        let names: Vec<String> = v.names.iter().map(|n| fq(n)).collect();
        s += &format!(
            "        case {}\n            set tool {}\n",
            names.join(" "),
            v.tool
        );
        if let Some(x) = v.sub {
            s += &format!("            set sub {x}\n");
        }
    }
    s += r#"        case '*'
            __fish_complete_path $cur
            return
    end
    set -l line (string join ' ' -- $tool $sub (string escape -- $rest))
    if test -n "$cur"
        complete -C "$line "(string escape -- $cur)
    else
        complete -C "$line "
    end
end
"#;
    s
}
