//! Send targets: what `cm-send TO` means, and which peer of a roster it names.
//!
//! `*` and `@all` are everyone, `@x` a group, `#x` a topic, 64 hex a key, 4 to 63 lowercase hex a key prefix, and
//! anything else a display name (original-cli.md §6.1). Names and prefixes resolve against the roster the broker
//! sent; unlike the original, a miss suggests the nearest name, and several sessions of one member collapse to that
//! member's key, which reaches all of them.

use crate::error::{Error, Result};

/// A parsed target, before it is matched against the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `*` or `@all`.
    Everyone,
    /// `@name`: a group, levels separated by `/` (`@eng` also reaches `eng/backend`).
    Group(String),
    /// `#name` or `#id`: a topic.
    Topic(String),
    /// A full ed25519 key, 64 lowercase hex: a member or a session.
    Key(String),
    /// 4 to 63 lowercase hex: the start of a member or session key.
    KeyPrefix(String),
    /// A display name, matched case-insensitively.
    Name(String),
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.split('/').all(|level| {
            !level.is_empty()
                && level
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        })
}

impl Target {
    /// Classifies `s`. Errors only on what can never be a target: empty input, a bad group or topic name.
    pub fn parse(s: &str) -> Result<Target> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::usage(
                "empty target: give a peer name, a key, *, @group or #topic",
            ));
        }
        if s == "*" || s == "@all" {
            return Ok(Target::Everyone);
        }
        if let Some(g) = s.strip_prefix('@') {
            if !valid_group(g) {
                return Err(Error::usage(format!(
                    "invalid group {s:?}: use letters, digits, '.', '_' and '-', with '/' between levels"
                )));
            }
            return Ok(Target::Group(g.to_string()));
        }
        if let Some(t) = s.strip_prefix('#') {
            if t.is_empty()
                || t.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '#')
            {
                return Err(Error::usage(format!(
                    "invalid topic {s:?}: a topic name has no spaces"
                )));
            }
            return Ok(Target::Topic(t.to_string()));
        }
        // A pasted key may be upper case; a 64-hex display name is not a thing worth keeping reachable.
        if s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Target::Key(s.to_ascii_lowercase()));
        }
        if (4..=63).contains(&s.len()) && is_lower_hex(s) {
            return Ok(Target::KeyPrefix(s.to_string()));
        }
        Ok(Target::Name(s.to_string()))
    }
}

/// A roster row target resolution chooses from: one presence (or one offline member) in a mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Display name.
    pub name: String,
    /// The presence's key: a session key, or the member key for a member without sessions.
    pub pubkey: String,
    /// The key of the member the presence belongs to.
    pub member_pubkey: String,
    /// The mesh's slug.
    pub mesh: String,
    /// Connected now.
    pub online: bool,
    /// A one-shot tool's connection: never a target by name.
    pub control_plane: bool,
}

/// What a target resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// Everyone in the mesh.
    Everyone,
    /// A group, without `@`.
    Group(String),
    /// A topic name or id, without `#`.
    Topic(String),
    /// One recipient. `key` is what to address: a session key, or a member key that reaches every session of the
    /// member. `peer` is the roster row it came from, when there is one (a full key may name someone offline).
    Peer {
        key: String,
        peer: Option<&'a Candidate>,
    },
}

impl Resolved<'_> {
    /// The wire's `targetSpec`: `*`, `@group`, `#topic` or a 64-hex key.
    pub fn spec(&self) -> String {
        match self {
            Resolved::Everyone => "*".into(),
            Resolved::Group(g) => format!("@{g}"),
            Resolved::Topic(t) => format!("#{t}"),
            Resolved::Peer { key, .. } => key.clone(),
        }
    }
}

/// `ab12cd34…`
fn short(key: &str) -> String {
    format!("{}…", key.get(..8).unwrap_or(key))
}

/// `in mesh dev`, `in any joined mesh`, or nothing when the roster is empty.
fn where_(roster: &[Candidate]) -> String {
    match roster.first() {
        None => String::new(),
        Some(first) if roster.iter().all(|c| c.mesh == first.mesh) => {
            format!(" in mesh {}", first.mesh)
        }
        Some(_) => " in any joined mesh".into(),
    }
}

/// Matches `t` against `roster`. Names and prefixes must pick out one member; control-plane rows never match.
pub fn resolve<'a>(t: &Target, roster: &'a [Candidate]) -> Result<Resolved<'a>> {
    let (given, matches, prefix) = match t {
        Target::Everyone => return Ok(Resolved::Everyone),
        Target::Group(g) => return Ok(Resolved::Group(g.clone())),
        Target::Topic(x) => return Ok(Resolved::Topic(x.clone())),
        Target::Key(k) => {
            let peer = roster
                .iter()
                .find(|c| c.pubkey == *k)
                .or_else(|| roster.iter().find(|c| c.member_pubkey == *k));
            return Ok(Resolved::Peer {
                key: k.clone(),
                peer,
            });
        }
        Target::KeyPrefix(p) => {
            let by_key = matching(roster, |c| {
                c.pubkey.starts_with(p.as_str()) || c.member_pubkey.starts_with(p.as_str())
            });
            // A hex-looking word like `cafe` may still be somebody's name.
            let (found, prefix) = if by_key.is_empty() {
                (by_name(roster, p), None)
            } else {
                (by_key, Some(p.as_str()))
            };
            if found.is_empty() {
                return Err(Error::not_found(format!(
                    "no peer with a key starting {p:?}{}",
                    where_(roster)
                )));
            }
            (p, found, prefix)
        }
        Target::Name(n) => {
            let found = by_name(roster, n);
            if found.is_empty() {
                let names = roster
                    .iter()
                    .filter(|c| !c.control_plane)
                    .map(|c| c.name.as_str());
                let hint = match crate::cli::did_you_mean(n, names) {
                    Some(s) => format!(" (did you mean {s:?}?)"),
                    None => String::new(),
                };
                return Err(Error::not_found(format!(
                    "no peer named {n:?}{}{hint}",
                    where_(roster)
                )));
            }
            (n, found, None)
        }
    };
    let member = &matches[0].member_pubkey;
    if matches.iter().all(|c| c.member_pubkey == *member) {
        let one = matches[0];
        // One presence that the input names by its own key or name: address that session. Otherwise the input
        // named the member (its key prefix, or the name its several sessions share): address the member.
        let own = matches.len() == 1 && prefix.is_none_or(|p| one.pubkey.starts_with(p));
        let key = if own {
            one.pubkey.clone()
        } else {
            member.clone()
        };
        return Ok(Resolved::Peer {
            key,
            peer: Some(one),
        });
    }
    let several_meshes = matches.iter().any(|c| c.mesh != matches[0].mesh);
    // A name is a member's: its key and its sessions are one candidate, shown by the member key that reaches it.
    let by_name = matches!(t, Target::Name(_));
    let mut shown: Vec<Candidate> = Vec::new();
    for c in &matches {
        let same = |o: &Candidate| o.mesh == c.mesh && o.member_pubkey == c.member_pubkey;
        if !by_name {
            shown.push((*c).clone());
        } else if !shown.iter().any(same) {
            shown.push(Candidate {
                pubkey: c.member_pubkey.clone(),
                ..(*c).clone()
            });
        }
    }
    let list = shown
        .iter()
        .map(|c| {
            let mesh = if several_meshes {
                format!(" in {}", c.mesh)
            } else {
                String::new()
            };
            format!("{} ({}){mesh}", c.name, short(&c.pubkey))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let how = if several_meshes {
        "pick a mesh with --mesh, or use the full key"
    } else if matches!(t, Target::Name(_)) {
        "use a key prefix or the full key"
    } else {
        "use a longer prefix or the full key"
    };
    let what = if by_name { "members" } else { "peers" };
    Err(Error::usage(format!(
        "{given:?} matches {} {what}: {list}; {how}",
        shown.len()
    )))
}

/// Rows that are not control-plane and satisfy `f`, one per presence key.
fn matching(roster: &[Candidate], f: impl Fn(&Candidate) -> bool) -> Vec<&Candidate> {
    let mut out: Vec<&Candidate> = Vec::new();
    for c in roster.iter().filter(|c| !c.control_plane && f(c)) {
        if !out.iter().any(|o| o.pubkey == c.pubkey) {
            out.push(c);
        }
    }
    out
}

fn by_name<'a>(roster: &'a [Candidate], name: &str) -> Vec<&'a Candidate> {
    let name = name.to_lowercase();
    matching(roster, |c| c.name.to_lowercase() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn key(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn cand(name: &str, pubkey: &str, member: &str) -> Candidate {
        Candidate {
            name: name.into(),
            pubkey: pubkey.into(),
            member_pubkey: member.into(),
            mesh: "dev".into(),
            online: true,
            control_plane: false,
        }
    }

    #[test]
    fn parses_each_class() {
        let p = |s: &str| Target::parse(s).unwrap();
        assert_eq!(p("*"), Target::Everyone);
        assert_eq!(p("@all"), Target::Everyone);
        assert_eq!(p("@eng"), Target::Group("eng".into()));
        assert_eq!(p("@eng/backend"), Target::Group("eng/backend".into()));
        assert_eq!(p("#deploys"), Target::Topic("deploys".into()));
        assert_eq!(p(&key('a')), Target::Key(key('a')));
        assert_eq!(p(&key('A')), Target::Key(key('a')));
        assert_eq!(p("ab12"), Target::KeyPrefix("ab12".into()));
        assert_eq!(p(&"f".repeat(63)), Target::KeyPrefix("f".repeat(63)));
        assert_eq!(p("abc"), Target::Name("abc".into()));
        assert_eq!(p("AB12"), Target::Name("AB12".into()));
        assert_eq!(p(&"a".repeat(65)), Target::Name("a".repeat(65)));
        assert_eq!(p("bob"), Target::Name("bob".into()));
        assert_eq!(p(" Alice Smith "), Target::Name("Alice Smith".into()));
    }

    #[test]
    fn refuses_what_cannot_be_a_target() {
        for s in [
            "", "   ", "@", "@a b", "@a//b", "@/a", "@a/", "@x!", "#", "#a b",
        ] {
            assert_eq!(Target::parse(s).unwrap_err().code, Code::Usage, "{s:?}");
        }
    }

    #[test]
    fn fan_out_targets_pass_through() {
        let r = resolve(&Target::parse("@eng").unwrap(), &[]).unwrap();
        assert_eq!(
            (r.clone(), r.spec()),
            (Resolved::Group("eng".into()), "@eng".into())
        );
        assert_eq!(resolve(&Target::Everyone, &[]).unwrap().spec(), "*");
        assert_eq!(
            resolve(&Target::Topic("t".into()), &[]).unwrap().spec(),
            "#t"
        );
    }

    #[test]
    fn full_keys_need_no_roster() {
        let roster = [cand("bob", &key('b'), &key('1'))];
        let r = resolve(&Target::Key(key('9')), &roster).unwrap();
        assert_eq!(
            r,
            Resolved::Peer {
                key: key('9'),
                peer: None
            }
        );
        let r = resolve(&Target::Key(key('1')), &roster).unwrap();
        assert_eq!(
            r,
            Resolved::Peer {
                key: key('1'),
                peer: Some(&roster[0])
            }
        );
    }

    #[test]
    fn names_match_case_insensitively_and_skip_control_plane() {
        let mut cp = cand("Bob", &key('c'), &key('2'));
        cp.control_plane = true;
        let roster = [cp, cand("Bob", &key('b'), &key('1'))];
        let r = resolve(&Target::Name("bOB".into()), &roster).unwrap();
        assert_eq!(
            r,
            Resolved::Peer {
                key: key('b'),
                peer: Some(&roster[1])
            }
        );
    }

    #[test]
    fn sessions_of_one_member_collapse_to_the_member_key() {
        let roster = [
            cand("bob", &key('b'), &key('1')),
            cand("bob", &key('c'), &key('1')),
            cand("bob", &key('b'), &key('1')),
        ];
        let r = resolve(&Target::Name("bob".into()), &roster).unwrap();
        assert_eq!(r.spec(), key('1'));
    }

    #[test]
    fn a_miss_suggests_the_nearest_name() {
        let roster = [
            cand("bobby", &key('b'), &key('1')),
            cand("carol", &key('c'), &key('2')),
        ];
        let e = resolve(&Target::Name("bob".into()), &roster).unwrap_err();
        assert_eq!(e.code, Code::NotFound);
        assert_eq!(
            e.msg,
            r#"no peer named "bob" in mesh dev (did you mean "bobby"?)"#
        );
        let e = resolve(&Target::Name("zed".into()), &roster).unwrap_err();
        assert_eq!(e.msg, r#"no peer named "zed" in mesh dev"#);
        let e = resolve(&Target::Name("zed".into()), &[]).unwrap_err();
        assert_eq!(e.msg, r#"no peer named "zed""#);
    }

    #[test]
    fn prefixes_match_session_or_member_keys() {
        let bob = "ab12cd34".to_string() + &"0".repeat(56);
        let bob_member = "77".repeat(32);
        let roster = [
            cand("bob", &bob, &bob_member),
            cand("bob", &("ab99".to_string() + &"1".repeat(60)), &bob_member),
        ];
        let r = resolve(&Target::KeyPrefix("ab12".into()), &roster).unwrap();
        assert_eq!(
            r,
            Resolved::Peer {
                key: bob.clone(),
                peer: Some(&roster[0])
            }
        );
        // Both sessions of one member: the prefix named the member.
        assert_eq!(
            resolve(&Target::KeyPrefix("7777".into()), &roster)
                .unwrap()
                .spec(),
            bob_member
        );
        assert_eq!(
            resolve(&Target::KeyPrefix("abab".into()), &roster)
                .unwrap_err()
                .code,
            Code::NotFound
        );
        // One session named by its member's key prefix still addresses the member.
        let one = [cand("bob", &bob, &bob_member)];
        assert_eq!(
            resolve(&Target::KeyPrefix("7777".into()), &one)
                .unwrap()
                .spec(),
            bob_member
        );
        let e = resolve(&Target::KeyPrefix("ffff".into()), &one).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                Code::NotFound,
                r#"no peer with a key starting "ffff" in mesh dev"#
            )
        );
    }

    #[test]
    fn hex_looking_names_still_resolve() {
        let roster = [cand("cafe", &key('b'), &key('1'))];
        assert_eq!(
            resolve(&Target::parse("cafe").unwrap(), &roster)
                .unwrap()
                .spec(),
            key('b')
        );
    }

    #[test]
    fn ambiguity_lists_the_candidates() {
        let bob = "ab12cd34".to_string() + &"0".repeat(56);
        let bonnie = "9f8e7d6c".to_string() + &"0".repeat(56);
        let roster = [
            cand("bob", &bob, &key('1')),
            cand("bonnie", &bonnie, &key('2')),
            cand("carol", &("ab".to_string() + &"c".repeat(62)), &key('3')),
        ];
        let e = resolve(&Target::KeyPrefix("abab".into()), &roster).unwrap_err();
        assert_eq!(e.code, Code::NotFound);
        let two = [
            roster[0].clone(),
            Candidate {
                pubkey: "ab12ffff".to_string() + &"0".repeat(56),
                ..roster[1].clone()
            },
        ];
        let e = resolve(&Target::KeyPrefix("ab12".into()), &two).unwrap_err();
        assert_eq!(e.code, Code::Usage);
        assert_eq!(
            e.msg,
            r#""ab12" matches 2 peers: bob (ab12cd34…), bonnie (ab12ffff…); use a longer prefix or the full key"#
        );
        let twins = [cand("bo", &bob, &key('1')), cand("BO", &bonnie, &key('2'))];
        let e = resolve(&Target::Name("bo".into()), &twins).unwrap_err();
        assert_eq!(
            e.msg,
            r#""bo" matches 2 members: bo (11111111…), BO (22222222…); use a key prefix or the full key"#
        );
    }

    #[test]
    fn ambiguity_across_meshes_asks_for_one() {
        let mut other = cand("bob", &key('c'), &key('2'));
        other.mesh = "ops".into();
        let roster = [cand("bob", &key('b'), &key('1')), other];
        let e = resolve(&Target::Name("bob".into()), &roster).unwrap_err();
        assert_eq!(
            e.msg,
            r#""bob" matches 2 members: bob (11111111…) in dev, bob (22222222…) in ops; pick a mesh with --mesh, or use the full key"#
        );
        // A member's key and sessions count once: two members, not four peers.
        let mut crowd = roster.to_vec();
        crowd.push(cand("bob", &key('1'), &key('1')));
        crowd.push(cand("bob", &key('d'), &key('1')));
        let e = resolve(&Target::Name("bob".into()), &crowd).unwrap_err();
        assert!(
            e.msg.starts_with(r#""bob" matches 2 members: "#),
            "{}",
            e.msg
        );
        let e = resolve(&Target::Name("zed".into()), &roster).unwrap_err();
        assert_eq!(e.msg, r#"no peer named "zed" in any joined mesh"#);
    }
}
