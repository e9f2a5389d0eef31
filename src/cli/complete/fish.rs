//! The fish completion script.

use super::super::{Complete, Flag, Pos, Tool, common_flags};
use super::{lookup, lookups};

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
