//! Flat JSON objects of strings, both ways: the upstreams report the headers they received this
//! way, and tests read them back. Enough JSON for that, no more (no serde_json in the tree).

use std::collections::BTreeMap;

/// Encodes `{"name": "value", …}` with JSON string escapes.
pub fn encode_string_map(map: &BTreeMap<String, String>) -> String {
    let fields: Vec<String> = map
        .iter()
        .map(|(name, value)| format!("{}:{}", quote(name), quote(value)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a JSON object whose values are all strings (as Python's `json.dumps`, Node's
/// `JSON.stringify` and [`encode_string_map`] write them). Panics on anything else, with the
/// text, since a test cannot go on without it.
pub fn parse_string_map(text: &str) -> BTreeMap<String, String> {
    let mut chars = text.trim().chars().peekable();
    let mut map = BTreeMap::new();
    let fail = |why: &str| -> ! { panic!("not a flat JSON object of strings ({why}): {text}") };
    if chars.next() != Some('{') {
        fail("no opening brace");
    }
    loop {
        skip_space(&mut chars);
        match chars.next() {
            Some('}') if map.is_empty() => break,
            Some('"') => {}
            _ => fail("expected a name"),
        }
        let name = read_string(&mut chars).unwrap_or_else(|why| fail(why));
        skip_space(&mut chars);
        if chars.next() != Some(':') {
            fail("expected ':'");
        }
        skip_space(&mut chars);
        if chars.next() != Some('"') {
            fail("expected a string value");
        }
        let value = read_string(&mut chars).unwrap_or_else(|why| fail(why));
        map.insert(name, value);
        skip_space(&mut chars);
        match chars.next() {
            Some(',') => {}
            Some('}') => break,
            _ => fail("expected ',' or '}'"),
        }
    }
    map
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_space(chars: &mut Chars<'_>) {
    while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
}

/// Reads the rest of a string whose opening quote was consumed.
fn read_string(chars: &mut Chars<'_>) -> Result<String, &'static str> {
    let mut out = String::new();
    loop {
        match chars.next().ok_or("unterminated string")? {
            '"' => return Ok(out),
            '\\' => match chars.next().ok_or("unterminated escape")? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => out.push(read_unicode_escape(chars)?),
                c @ ('"' | '\\' | '/') => out.push(c),
                _ => return Err("unknown escape"),
            },
            c => out.push(c),
        }
    }
}

/// `XXXX` after `\u`, with a following `\uXXXX` low surrogate when this is a high one.
fn read_unicode_escape(chars: &mut Chars<'_>) -> Result<char, &'static str> {
    let high = read_hex4(chars)?;
    if !(0xd800..0xdc00).contains(&high) {
        return char::from_u32(high).ok_or("lone low surrogate");
    }
    if chars.next() != Some('\\') || chars.next() != Some('u') {
        return Err("high surrogate without its pair");
    }
    let low = read_hex4(chars)?;
    if !(0xdc00..0xe000).contains(&low) {
        return Err("bad surrogate pair");
    }
    char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)).ok_or("bad surrogate pair")
}

fn read_hex4(chars: &mut Chars<'_>) -> Result<u32, &'static str> {
    let digits: String = chars.by_ref().take(4).collect();
    u32::from_str_radix(&digits, 16).map_err(|_| "bad \\u escape")
}
