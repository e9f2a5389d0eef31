//! Path globs of file reservations, with git's `:(glob)` pathspec semantics, one rule for `cm-reserve` (which
//! checks a commit's paths) and the broker (which checks one reservation against another).
//!
//! A pattern is relative to the repository's root. As in `git ls-files -- ':(glob)PATTERN'`:
//!
//! - `*` and `?` and `[...]` never match a `/`; `*.rs` is the `.rs` files at the top only;
//! - `**` as a whole component: `**/` is any number of leading directories (none included), `/**` at the end is
//!   everything inside, `a/**/b` is `b` under `a` at any depth; elsewhere `**` is `*`;
//! - a pattern without wildcards also names everything under it: `src` is the directory's files.
//!
//! Both questions the toolkit asks, "does this path match" and "can some path match both patterns", are one
//! question about two automata: whether their languages meet. So each pattern compiles to a small NFA over bytes,
//! a path is the NFA of its literal bytes, and the answer is a walk over pairs of states. It is exact for the
//! patterns themselves; `src/*` and `src/*/x` do not overlap, and `src/**` and `**/*.rs` do.

/// The longest pattern, in bytes.
pub const MAX_LEN: usize = 1024;

/// A set of bytes, one bit each.
type Set = [u64; 4];

const fn empty() -> Set {
    [0; 4]
}

fn with(mut s: Set, b: u8) -> Set {
    s[usize::from(b >> 6)] |= 1 << (b & 63);
    s
}

fn all() -> Set {
    [u64::MAX; 4]
}

/// Every byte but `/`.
fn not_slash() -> Set {
    let mut s = all();
    s[0] &= !(1 << b'/');
    s
}

fn meet(a: &Set, b: &Set) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// One byte of a set (a literal, `?`, `[...]`).
    One(Set),
    /// `*`: any run of bytes but `/`.
    Star,
    /// `**/`: any number of directories, each a non-empty name and a `/`.
    Dirs,
    /// `**` at the end: anything.
    Rest,
}

#[derive(Debug, Default, Clone)]
struct State {
    eps: Vec<usize>,
    edges: Vec<(Set, usize)>,
    accept: bool,
}

#[derive(Debug, Default, Clone)]
struct Nfa {
    states: Vec<State>,
}

impl Nfa {
    fn add(&mut self) -> usize {
        self.states.push(State::default());
        self.states.len() - 1
    }

    fn edge(&mut self, from: usize, set: Set, to: usize) {
        self.states[from].edges.push((set, to));
    }

    fn eps(&mut self, from: usize, to: usize) {
        self.states[from].eps.push(to);
    }

    /// Adds `toks` as a branch from `start`; the state it ends in.
    fn branch(&mut self, start: usize, toks: &[Tok]) -> usize {
        let mut cur = self.add();
        self.eps(start, cur);
        for t in toks {
            let n = self.add();
            match t {
                Tok::One(set) => self.edge(cur, *set, n),
                Tok::Star => {
                    self.eps(cur, n);
                    self.edge(n, not_slash(), n);
                }
                Tok::Rest => {
                    self.eps(cur, n);
                    self.edge(n, all(), n);
                }
                Tok::Dirs => {
                    let name = self.add();
                    self.eps(cur, n);
                    self.edge(n, not_slash(), name);
                    self.edge(name, not_slash(), name);
                    self.edge(name, with(empty(), b'/'), n);
                }
            }
            cur = n;
        }
        cur
    }

    fn closure(&self, from: usize, into: &mut Vec<usize>) {
        let mut todo = vec![from];
        while let Some(s) = todo.pop() {
            if into.contains(&s) {
                continue;
            }
            into.push(s);
            todo.extend(self.states[s].eps.iter().copied());
        }
    }
}

/// Whether some string is in both automata's languages (both start at state 0).
fn intersect(a: &Nfa, b: &Nfa) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![(0usize, 0usize)];
    while let Some((x, y)) = todo.pop() {
        if !seen.insert((x, y)) {
            continue;
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        a.closure(x, &mut xs);
        b.closure(y, &mut ys);
        for &p in &xs {
            for &q in &ys {
                if a.states[p].accept && b.states[q].accept {
                    return true;
                }
                for (s1, t1) in &a.states[p].edges {
                    for (s2, t2) in &b.states[q].edges {
                        if meet(s1, s2) && !seen.contains(&(*t1, *t2)) {
                            todo.push((*t1, *t2));
                        }
                    }
                }
            }
        }
    }
    false
}

/// A reservation's path pattern, parsed.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    nfa: Nfa,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.text == other.text
    }
}

impl Glob {
    /// Parses a pattern relative to the repository's root. `./` and a trailing `/` are dropped; an empty pattern,
    /// a `..` or `.` component, a leading `/`, a control character or an unclosed `[` is an error saying so.
    pub fn parse(pattern: &str) -> Result<Glob, String> {
        let text = normalize(pattern)?;
        let toks = tokens(&text)?;
        let mut nfa = Nfa::default();
        let start = nfa.add();
        let end = nfa.branch(start, &toks);
        nfa.states[end].accept = true;
        // The literal reading: the pattern's bytes as they are, and everything under them. Git reads a pattern
        // with wildcards literally too, which only matters for names with `*`, `?` or `[` in them, and would make
        // `src/*` overlap `src/*/x`; so a pattern with wildcards has only its glob reading here.
        if text.contains(['*', '?', '[', '\\']) {
            return Ok(Glob { text, nfa });
        }
        let lit: Vec<Tok> = text.bytes().map(|b| Tok::One(with(empty(), b))).collect();
        let end = nfa.branch(start, &lit);
        nfa.states[end].accept = true;
        let inside = nfa.add();
        nfa.edge(end, with(empty(), b'/'), inside);
        nfa.edge(inside, all(), inside);
        nfa.states[inside].accept = true;
        Ok(Glob { text, nfa })
    }

    /// The pattern as stored: normalized.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (relative to the root, as `git diff --name-only` prints it) is one this pattern names.
    pub fn matches(&self, path: &str) -> bool {
        let mut nfa = Nfa::default();
        let start = nfa.add();
        let toks: Vec<Tok> = path.bytes().map(|b| Tok::One(with(empty(), b))).collect();
        let end = nfa.branch(start, &toks);
        nfa.states[end].accept = true;
        intersect(&self.nfa, &nfa)
    }

    /// Whether some path is named by both patterns.
    pub fn overlaps(&self, other: &Glob) -> bool {
        intersect(&self.nfa, &other.nfa)
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The pattern as it is stored and compared: no `./`, no doubled or trailing `/`.
pub fn normalize(pattern: &str) -> Result<String, String> {
    let p = pattern.trim();
    if p.len() > MAX_LEN {
        return Err(format!("a path pattern is at most {MAX_LEN} bytes"));
    }
    if p.chars().any(char::is_control) {
        return Err(format!(
            "{pattern:?}: a path pattern has no control characters"
        ));
    }
    if p.starts_with('/') {
        return Err(format!(
            "{pattern:?}: a path pattern is relative to the repository's root"
        ));
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" => {}
            "." if parts.is_empty() => {}
            "." | ".." => {
                return Err(format!(
                    "{pattern:?}: a path pattern has no {c:?} components"
                ));
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err("a path pattern names at least one path".into());
    }
    Ok(parts.join("/"))
}

fn tokens(p: &str) -> Result<Vec<Tok>, String> {
    let b = p.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let Some(&c) = b.get(i + 1) else {
                    return Err(format!("{p:?} ends in a lone backslash"));
                };
                out.push(Tok::One(with(empty(), c)));
                i += 2;
            }
            b'?' => {
                out.push(Tok::One(not_slash()));
                i += 1;
            }
            b'[' => {
                let (set, next) = class(b, i).ok_or_else(|| format!("{p:?} has an unclosed ["))?;
                out.push(Tok::One(set));
                i = next;
            }
            b'*' => {
                let mut j = i;
                while b.get(j) == Some(&b'*') {
                    j += 1;
                }
                let whole_start = i == 0 || b[i - 1] == b'/';
                match b.get(j) {
                    _ if j - i < 2 || !whole_start => {
                        out.push(Tok::Star);
                        i = j;
                    }
                    None => {
                        out.push(Tok::Rest);
                        i = j;
                    }
                    Some(b'/') => {
                        out.push(Tok::Dirs);
                        i = j + 1;
                    }
                    Some(_) => {
                        out.push(Tok::Star);
                        i = j;
                    }
                }
            }
            c => {
                out.push(Tok::One(with(empty(), c)));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The bracket expression at `b[open]`: its set (never `/`) and the index after its `]`.
fn class(b: &[u8], open: usize) -> Option<(Set, usize)> {
    let mut i = open + 1;
    let negate = matches!(b.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut set = empty();
    let mut first = true;
    loop {
        let c = *b.get(i)?;
        if c == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        if c == b'[' && b.get(i + 1) == Some(&b':') {
            let rest = &b[i + 2..];
            let end = rest.windows(2).position(|w| w == b":]")?;
            let name = std::str::from_utf8(&rest[..end]).ok()?;
            for x in 0..=255u8 {
                if posix(name, x)? {
                    set = with(set, x);
                }
            }
            i += 2 + end + 2;
            continue;
        }
        let lo = if c == b'\\' {
            i += 1;
            *b.get(i)?
        } else {
            c
        };
        i += 1;
        let hi = if b.get(i) == Some(&b'-') && b.get(i + 1).is_some_and(|&n| n != b']') {
            let mut h = *b.get(i + 1)?;
            i += 2;
            if h == b'\\' {
                h = *b.get(i)?;
                i += 1;
            }
            h
        } else {
            lo
        };
        for x in lo..=hi {
            set = with(set, x);
        }
    }
    if negate {
        for w in &mut set {
            *w = !*w;
        }
    }
    let slash = not_slash();
    for (w, m) in set.iter_mut().zip(slash) {
        *w &= m;
    }
    Some((set, i))
}

/// Whether `x` is in the POSIX class `name`; `None` for a class git does not know.
fn posix(name: &str, x: u8) -> Option<bool> {
    Some(match name {
        "alnum" => x.is_ascii_alphanumeric(),
        "alpha" => x.is_ascii_alphabetic(),
        "blank" => x == b' ' || x == b'\t',
        "cntrl" => x.is_ascii_control(),
        "digit" => x.is_ascii_digit(),
        "graph" => x.is_ascii_graphic(),
        "lower" => x.is_ascii_lowercase(),
        "print" => x.is_ascii_graphic() || x == b' ',
        "punct" => x.is_ascii_punctuation(),
        "space" => x.is_ascii_whitespace(),
        "upper" => x.is_ascii_uppercase(),
        "xdigit" => x.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn matches_as_git_does() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "src/**",
                &["src/lib.rs", "src/a/b/c.rs"],
                &["src", "srcx/a", "x/src/a"],
            ),
            ("*.rs", &["top.rs", ".rs"], &["src/lib.rs", "top.rsx"]),
            (
                "src",
                &["src", "src/lib.rs", "src/a/b.rs"],
                &["srcx", "x/src"],
            ),
            ("src/", &["src/lib.rs"], &["srcx/a"]),
            ("**/*.rs", &["a.rs", "x/y/z.rs"], &["a.rsx"]),
            (
                "src/**/*.rs",
                &["src/a.rs", "src/x/y.rs"],
                &["a.rs", "src/a.md"],
            ),
            ("src/*", &["src/lib.rs"], &["src/a/m.rs"]),
            ("**", &["a", "a/b/c"], &[]),
            ("a/**/b", &["a/b", "a/x/b", "a/x/y/b"], &["a/xb", "b"]),
            ("s*", &["src"], &["src/lib.rs"]),
            ("**/b", &["b", "x/b"], &["x/b/c"]),
            ("f[ao]o.?", &["foo.c", "fao.h"], &["fxo.c", "foo.cc"]),
            ("[!a]*", &["b", "bcd"], &["a", "abc"]),
            ("x[[:digit:]]", &["x1"], &["xa"]),
            ("src**", &["src", "srcx"], &["src/a"]),
            ("a\\*b", &["a*b"], &["axb"]),
        ];
        for (p, yes, no) in cases {
            for y in *yes {
                assert!(g(p).matches(y), "{p} should match {y}");
            }
            for n in *no {
                assert!(!g(p).matches(n), "{p} should not match {n}");
            }
        }
    }

    #[test]
    fn overlaps_when_some_path_is_in_both() {
        let yes = [
            ("src/**", "**/*.rs"),
            ("src", "src/lib.rs"),
            ("src/*.rs", "src/lib.*"),
            ("**", "a"),
            ("a/**/b", "a/x/**"),
            ("*.rs", "main.rs"),
        ];
        let no = [
            ("src/*", "src/*/x"),
            ("*.rs", "src/*.rs"),
            ("docs/**", "src/**"),
            ("*.md", "*.rs"),
            ("src/a.rs", "src/b.rs"),
        ];
        for (a, b) in yes {
            assert!(g(a).overlaps(&g(b)), "{a} and {b} overlap");
            assert!(g(b).overlaps(&g(a)), "{b} and {a} overlap");
        }
        for (a, b) in no {
            assert!(!g(a).overlaps(&g(b)), "{a} and {b} do not overlap");
        }
    }

    #[test]
    fn patterns_are_normalized_or_refused() {
        assert_eq!(g("./src//a/").as_str(), "src/a");
        for bad in ["", "/etc", "a/../b", "a/./b", "[ab", "x\\", "a\nb"] {
            assert!(Glob::parse(bad).is_err(), "{bad:?}");
        }
    }
}
