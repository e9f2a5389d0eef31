//! Edits of JSON text in place, for Claude Code's files.
//!
//! `serde_json` would read `12345678901234567890123` back as `1.2345678901234568e+22`, unescape `\u2028`, re-indent
//! compact objects and add a newline Claude Code does not write. So install never re-serializes a file: it finds the
//! byte span of the one member or element it adds or removes and splices only that, in the style (indentation,
//! separators) of the container it lands in. Every byte claudemesh did not add stays as it was.
//!
//! The scanner trusts its input to be valid JSON ([`Doc::parse`] checks that first with `serde_json`), and answers
//! `None` instead of panicking on anything else.

use std::ops::Range;

use serde::Serialize;
use serde_json::Value;

/// One member of an object (with its key) or element of an array.
#[derive(Debug, Clone)]
struct Item {
    /// Where the member starts: its key, or the element's value.
    start: usize,
    /// The key's end, for members.
    key_end: usize,
    key: Option<String>,
    value: Range<usize>,
}

/// An object or array: its brackets and its items.
#[derive(Debug, Clone)]
struct Container {
    open: usize,
    close: usize,
    items: Vec<Item>,
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => container(b, i).map(|c| c.close + 1),
        _ => {
            let mut j = i;
            while j < b.len() && !b",}] \t\n\r".contains(&b[j]) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

fn container(b: &[u8], open: usize) -> Option<Container> {
    let (object, close_char) = match b.get(open)? {
        b'{' => (true, b'}'),
        b'[' => (false, b']'),
        _ => return None,
    };
    let mut items = Vec::new();
    let mut i = ws(b, open + 1);
    if *b.get(i)? == close_char {
        return Some(Container {
            open,
            close: i,
            items,
        });
    }
    loop {
        let start = i;
        let (key, key_end) = if object {
            let end = string_end(b, i)?;
            let key: String = serde_json::from_slice(b.get(i..end)?).ok()?;
            i = ws(b, end);
            if *b.get(i)? != b':' {
                return None;
            }
            i = ws(b, i + 1);
            (Some(key), end)
        } else {
            (None, i)
        };
        let end = value_end(b, i)?;
        items.push(Item {
            start,
            key_end,
            key,
            value: i..end,
        });
        i = ws(b, end);
        match *b.get(i)? {
            b',' => i = ws(b, i + 1),
            c if c == close_char => {
                return Some(Container {
                    open,
                    close: i,
                    items,
                });
            }
            _ => return None,
        }
    }
}

/// A JSON document as text, edited in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub text: String,
}

/// How members are laid out in a container: on lines of their own with an indent, or inline.
struct Style {
    /// `None` when inline.
    indent: Option<String>,
    /// What follows a comma between two items when inline.
    inline_gap: String,
    /// Between a key and its value.
    colon: String,
}

impl Doc {
    /// The document, if `text` is a JSON object.
    pub fn parse(text: &str) -> Option<Doc> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(_)) => Some(Doc { text: text.into() }),
            _ => None,
        }
    }

    /// A new, empty document, laid out as Claude Code writes its files (two-space indent, no final newline).
    pub fn empty() -> Doc {
        Doc {
            text: "{\n}".into(),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The value at `path` (object keys; the last one wins when a key repeats, as in `JSON.parse`).
    fn span(&self, path: &[&str]) -> Option<Range<usize>> {
        let b = self.bytes();
        let mut at = ws(b, 0);
        let mut end = value_end(b, at)?;
        for key in path {
            let c = container(b, at)?;
            let item = c
                .items
                .iter()
                .rev()
                .find(|i| i.key.as_deref() == Some(key))?;
            (at, end) = (item.value.start, item.value.end);
        }
        Some(at..end)
    }

    fn container_at(&self, path: &[&str]) -> Option<Container> {
        container(self.bytes(), self.span(path)?.start)
    }

    /// The value at `path`, parsed.
    pub fn get(&self, path: &[&str]) -> Option<Value> {
        serde_json::from_str(self.text.get(self.span(path)?)?).ok()
    }

    /// The text of the value at `path`, exactly as it is in the file.
    pub fn raw(&self, path: &[&str]) -> Option<String> {
        self.text.get(self.span(path)?).map(str::to_string)
    }

    /// How many items the container at `path` has.
    pub fn len(&self, path: &[&str]) -> Option<usize> {
        self.container_at(path).map(|c| c.items.len())
    }

    /// The indentation of the line `pos` is on.
    fn line_indent(&self, pos: usize) -> String {
        let b = self.bytes();
        let start = b[..pos]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let end = ws(b, start).min(pos);
        self.text[start..end].replace(['\n', '\r'], "")
    }

    /// One level of indentation, as the top-level object uses it; two spaces if it does not say.
    fn unit(&self) -> String {
        let b = self.bytes();
        let Some(root) = container(b, ws(b, 0)) else {
            return "  ".into();
        };
        match root.items.first() {
            Some(first) => {
                let gap = &self.text[root.open + 1..first.start];
                match gap.rfind('\n') {
                    Some(n) if n + 1 < gap.len() => gap[n + 1..].into(),
                    _ => "  ".into(),
                }
            }
            None => "  ".into(),
        }
    }

    fn style(&self, c: &Container) -> Style {
        let b = self.bytes();
        let root = container(b, ws(b, 0));
        // The colon as written in this container, else in the top-level one.
        let colon = [Some(c), root.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|c| {
                c.items
                    .iter()
                    .find(|i| i.key.is_some())
                    .map(|i| self.text[i.key_end..i.value.start].to_string())
            });
        let Some(first) = c.items.first() else {
            let multiline = self.text.trim_end().contains('\n');
            return Style {
                indent: multiline.then(|| self.line_indent(c.open) + &self.unit()),
                inline_gap: String::new(),
                colon: colon.unwrap_or_else(|| if multiline { ": " } else { ":" }.into()),
            };
        };
        let gap = &self.text[c.open + 1..first.start];
        let indent = gap.rfind('\n').map(|n| gap[n + 1..].to_string());
        let colon = colon.unwrap_or_else(|| ":".into());
        let inline_gap = match c.items.get(1) {
            Some(second) => self.text[first.value.end..second.start]
                .split_once(',')
                .map_or(String::new(), |(_, after)| after.to_string()),
            // One item says nothing about the gap after a comma: space as around the colon.
            None if colon.ends_with(' ') => " ".into(),
            None => String::new(),
        };
        Style {
            indent,
            inline_gap,
            colon,
        }
    }

    fn render(&self, v: &Value, style: &Style) -> String {
        match &style.indent {
            None => v.to_string(),
            Some(indent) => {
                let unit = self.unit();
                let mut buf = Vec::new();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
                let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
                if v.serialize(&mut ser).is_err() {
                    return v.to_string();
                }
                String::from_utf8_lossy(&buf).replace('\n', &format!("\n{indent}"))
            }
        }
    }

    fn splice(&mut self, range: Range<usize>, with: &str) {
        self.text.replace_range(range, with);
    }

    /// Adds `text` (a member or an element, already rendered) as the last item of `c`.
    fn append(&mut self, c: &Container, style: &Style, text: &str) {
        match (c.items.last(), &style.indent) {
            (Some(last), Some(indent)) => {
                self.splice(
                    last.value.end..last.value.end,
                    &format!(",\n{indent}{text}"),
                );
            }
            (Some(last), None) => {
                let gap = &style.inline_gap;
                self.splice(last.value.end..last.value.end, &format!(",{gap}{text}"));
            }
            (None, Some(indent)) => {
                let outer = self.line_indent(c.open);
                self.splice(c.open + 1..c.close, &format!("\n{indent}{text}\n{outer}"));
            }
            (None, None) => self.splice(c.open + 1..c.close, text),
        }
    }

    /// Sets `key` to `v` in the object at `path`: its value replaced where the key is, else a member added at
    /// the end. `None` if there is no object at `path`.
    pub fn set(&mut self, path: &[&str], key: &str, v: &Value) -> Option<()> {
        let c = self.container_at(path)?;
        if self.bytes()[c.open] != b'{' {
            return None;
        }
        let style = self.style(&c);
        if let Some(item) = c.items.iter().rev().find(|i| i.key.as_deref() == Some(key)) {
            let indent = Style {
                indent: style.indent.as_ref().map(|_| self.line_indent(item.start)),
                ..style
            };
            let text = self.render(v, &indent);
            self.splice(item.value.clone(), &text);
            return Some(());
        }
        let member = format!(
            "{}{}{}",
            Value::String(key.into()),
            style.colon,
            self.render(v, &style)
        );
        self.append(&c, &style, &member);
        Some(())
    }

    /// Puts `raw` (JSON text, kept byte for byte) as the value of the member `key` of the object at `path`,
    /// which must be there.
    pub fn set_raw(&mut self, path: &[&str], key: &str, raw: &str) -> Option<()> {
        let c = self.container_at(path)?;
        let item = c
            .items
            .iter()
            .rev()
            .find(|i| i.key.as_deref() == Some(key))?;
        self.splice(item.value.clone(), raw);
        Some(())
    }

    /// Adds `v` at the end of the array at `path`.
    pub fn push(&mut self, path: &[&str], v: &Value) -> Option<()> {
        let c = self.container_at(path)?;
        if self.bytes()[c.open] != b'[' {
            return None;
        }
        let style = self.style(&c);
        let text = self.render(v, &style);
        self.append(&c, &style, &text);
        Some(())
    }

    /// Replaces element `index` of the array at `path` with `v`.
    pub fn replace(&mut self, path: &[&str], index: usize, v: &Value) -> Option<()> {
        let c = self.container_at(path)?;
        let item = c.items.get(index)?;
        let style = self.style(&c);
        let text = self.render(v, &style);
        self.splice(item.value.clone(), &text);
        Some(())
    }

    /// The elements of the array at `path`, parsed.
    pub fn elements(&self, path: &[&str]) -> Option<Vec<Value>> {
        match self.get(path)? {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    fn remove_item(&mut self, c: &Container, i: usize) {
        let items = &c.items;
        let range = if items.len() == 1 {
            c.open + 1..c.close
        } else if i > 0 {
            items[i - 1].value.end..items[i].value.end
        } else {
            items[0].start..items[1].start
        };
        self.splice(range, "");
    }

    /// Removes the member `key` from the object at `path`; whether it was there.
    pub fn remove(&mut self, path: &[&str], key: &str) -> bool {
        let Some(c) = self.container_at(path) else {
            return false;
        };
        match c.items.iter().rposition(|i| i.key.as_deref() == Some(key)) {
            Some(i) => {
                self.remove_item(&c, i);
                true
            }
            None => false,
        }
    }

    /// Removes element `index` of the array at `path`; whether it was there.
    pub fn remove_at(&mut self, path: &[&str], index: usize) -> bool {
        match self.container_at(path) {
            Some(c) if index < c.items.len() => {
                self.remove_item(&c, index);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(s: &str) -> Doc {
        Doc::parse(s).unwrap()
    }

    #[test]
    fn a_member_added_and_removed_leaves_every_byte() {
        let before = "{\n  \"n\": 12345678901234567890123,\n  \"s\": \"\\u2028\",\n  \"mcpServers\": {\"a\": {\"command\": \"x\"}}\n}";
        let mut d = doc(before);
        d.set(&["mcpServers"], "claudemesh", &json!({"type": "stdio"}))
            .unwrap();
        assert_eq!(
            d.text,
            "{\n  \"n\": 12345678901234567890123,\n  \"s\": \"\\u2028\",\n  \"mcpServers\": {\"a\": {\"command\": \"x\"}, \"claudemesh\": {\"type\":\"stdio\"}}\n}"
        );
        assert!(d.remove(&["mcpServers"], "claudemesh"));
        assert_eq!(d.text, before);
    }

    #[test]
    fn indented_objects_get_indented_members() {
        let before = "{\n  \"a\": 1,\n  \"mcpServers\": {\n    \"x\": {}\n  }\n}";
        let mut d = doc(before);
        d.set(&["mcpServers"], "cm", &json!({"args": []})).unwrap();
        assert_eq!(
            d.text,
            "{\n  \"a\": 1,\n  \"mcpServers\": {\n    \"x\": {},\n    \"cm\": {\n      \"args\": []\n    }\n  }\n}"
        );
        assert!(d.remove(&["mcpServers"], "cm"));
        assert_eq!(d.text, before);

        let mut d = doc("{\n  \"a\": 1\n}");
        d.set(&[], "hooks", &json!({"Stop": [1]})).unwrap();
        assert_eq!(
            d.text,
            "{\n  \"a\": 1,\n  \"hooks\": {\n    \"Stop\": [\n      1\n    ]\n  }\n}"
        );
        assert!(d.remove(&[], "hooks"));
        assert_eq!(d.text, "{\n  \"a\": 1\n}");
    }

    #[test]
    fn empty_containers() {
        let mut d = Doc::empty();
        d.set(&[], "k", &json!(true)).unwrap();
        assert_eq!(d.text, "{\n  \"k\": true\n}");
        let mut d = doc("{\n\t\"m\": {},\n\t\"l\": []\n}");
        d.set(&["m"], "k", &json!(1)).unwrap();
        d.push(&["l"], &json!("x")).unwrap();
        assert_eq!(
            d.text,
            "{\n\t\"m\": {\n\t\t\"k\": 1\n\t},\n\t\"l\": [\n\t\t\"x\"\n\t]\n}"
        );
        assert!(d.remove(&["m"], "k"));
        assert!(d.remove_at(&["l"], 0));
        assert_eq!(d.text, "{\n\t\"m\": {},\n\t\"l\": []\n}");
        let mut d = doc("{\"m\":{}}");
        d.set(&["m"], "k", &json!([1, 2])).unwrap();
        assert_eq!(d.text, "{\"m\":{\"k\":[1,2]}}");
    }

    #[test]
    fn arrays_and_replacing() {
        let mut d = doc("{\"h\": [{\"a\": 1}, 2]}");
        d.push(&["h"], &json!({"b": 2})).unwrap();
        assert_eq!(d.text, "{\"h\": [{\"a\": 1}, 2, {\"b\":2}]}");
        d.replace(&["h"], 1, &json!("two")).unwrap();
        assert_eq!(d.text, "{\"h\": [{\"a\": 1}, \"two\", {\"b\":2}]}");
        assert!(d.remove_at(&["h"], 0));
        assert_eq!(d.text, "{\"h\": [\"two\", {\"b\":2}]}");
        assert_eq!(d.elements(&["h"]).unwrap(), [json!("two"), json!({"b": 2})]);
        assert!(!d.remove_at(&["h"], 5));
        let mut d = doc("{\"k\": {\"v\": 1}}");
        d.set_raw(&["k"], "v", "{\"command\":  \"claudemesh\"}")
            .unwrap();
        assert_eq!(d.text, "{\"k\": {\"v\": {\"command\":  \"claudemesh\"}}}");
        assert_eq!(
            d.raw(&["k", "v"]).unwrap(),
            "{\"command\":  \"claudemesh\"}"
        );
    }

    #[test]
    fn strings_with_brackets_and_escapes_do_not_confuse_it() {
        let mut d = doc(r#"{"a": "}\"]{", "b": {"c": "\\"}}"#);
        d.set(&["b"], "d", &json!(1)).unwrap();
        assert_eq!(d.text, r#"{"a": "}\"]{", "b": {"c": "\\", "d": 1}}"#);
        assert_eq!(d.get(&["b", "c"]).unwrap(), json!("\\"));
        assert!(d.set(&["a"], "x", &json!(1)).is_none());
        assert!(d.push(&["b"], &json!(1)).is_none());
        assert!(Doc::parse("[1]").is_none() && Doc::parse("{").is_none());
    }
}
