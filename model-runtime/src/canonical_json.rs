//! Canonical JSON bytes, for anything that is hashed or must be byte-identical on every machine
//! (the model manifest, the test model's config files).
//!
//! Rules: no whitespace; object keys sorted by their UTF-8 bytes; strings escape only `"`, `\`
//! and control characters (`\b \f \n \r \t`, otherwise `\u00xx` lowercase), everything else is
//! raw UTF-8; integers in decimal, other numbers as the shortest decimal that reads back as the
//! same f64, without exponent (Rust's `Display` for f64: `1e-5` is `0.00001`). The output never
//! depends on serde_json's cargo features (`preserve_order` changes how `Map` orders keys,
//! `arbitrary_precision` how numbers are kept).

use serde_json::Value;

/// `value` as canonical JSON bytes.
pub(crate) fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, value);
    out.into_bytes()
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_u64() {
        out.push_str(&i.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&f.to_string());
    } else {
        // Only reachable with `arbitrary_precision` and a number beyond f64: keep its text.
        out.push_str(&n.to_string());
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let value = json!({"b": [1, -3, 2.5, null], "a": {"z": true, "B": "x"}, "é": 1e-5});
        assert_eq!(
            String::from_utf8(to_vec(&value)).unwrap(),
            r#"{"a":{"B":"x","z":true},"b":[1,-3,2.5,null],"é":0.00001}"#
        );
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        let value = json!("q\"b\\n\n\u{1}ü/");
        assert_eq!(String::from_utf8(to_vec(&value)).unwrap(), "\"q\\\"b\\\\n\\n\\u0001ü/\"");
        // The output is valid JSON that parses back to the same value.
        let back: Value = serde_json::from_slice(&to_vec(&value)).unwrap();
        assert_eq!(back, value);
    }
}
