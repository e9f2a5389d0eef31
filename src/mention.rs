//! Mentions: the `@name`s of a topic message, parsed by the tool that posts it and by the broker that notifies
//! the members named, by one rule (reference §6.5). Shared by both sides, so it depends on nothing of either.

/// The longest mention a message may carry, and how many it may carry (reference §6.5).
const MENTION_MAX_LEN: usize = 64;
const MENTIONS_MAX: usize = 16;

fn mention_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The `@name`s in `text`, lowercased, each once, at most 16: `@` not preceded by a name character, then 1-64
/// name characters (`A-Z a-z 0-9 _ -`) not followed by another.
pub fn mentions(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() && out.len() < MENTIONS_MAX {
        if chars[i] != '@' || (i > 0 && mention_char(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < chars.len() && mention_char(chars[end]) {
            end += 1;
        }
        if (1..=MENTION_MAX_LEN).contains(&(end - start)) {
            let name: String = chars[start..end].iter().collect::<String>().to_lowercase();
            if !out.contains(&name) {
                out.push(name);
            }
        }
        i = end.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_follow_the_reference_pattern() {
        assert_eq!(mentions("hi @Bob and @carol-2!"), ["bob", "carol-2"]);
        assert_eq!(mentions("@bob @BOB"), ["bob"]);
        assert!(mentions("mail me at a@b.c").is_empty());
        assert!(mentions("@ alone").is_empty());
        assert!(mentions(&format!("@{}", "x".repeat(65))).is_empty());
        assert_eq!(mentions(&format!("@{}", "x".repeat(64))).len(), 1);
        let many: String = (0..20).map(|i| format!("@u{i} ")).collect();
        assert_eq!(mentions(&many).len(), 16);
    }
}
