//! What a session's data looks like: opaque bytes, or the realistic
//! sessions PHP and express write (for the memory and FIND figures of
//! BENCHMARKS.md).

/// The shape of the data a workload writes (`--data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// `--size` bytes of letters.
    #[default]
    Opaque,
    /// A typical PHP `$_SESSION`, serialized as PHP's `php` handler does:
    /// 10 entries (user_id, name, role, a cart of two items, a CSRF token,
    /// lang, last_seen, flash, theme, a preferences string padding it to
    /// `--size`, 826 in BENCHMARKS.md).
    Php,
    /// An express-session (connect-redis) JSON session of the same fields,
    /// with its cookie and passport's user.
    Json,
}

/// Session data of `shape`, about `size` bytes, and where in it the 16
/// hex digits go that make every write distinct (a writer stamps them).
pub fn build(shape: Shape, size: usize, n: usize) -> (Vec<u8>, Vec<usize>) {
    const STAMP: &str = "0000000000000000";
    let letter = |i: usize| char::from(b'a' + ((i + n) % 26) as u8);
    let (head, tail) = match shape {
        Shape::Opaque => {
            let value: Vec<u8> = (0..size).map(|i| letter(i) as u8).collect();
            return (value, vec![0]);
        }
        Shape::Php => (
            format!(
                "user_id|s:16:\"{STAMP}\";name|s:12:\"Alice Martin\";role|s:6:\"member\";\
                 cart|a:2:{{i:0;a:2:{{s:3:\"sku\";s:6:\"SKU-17\";s:3:\"qty\";i:2;}}\
                 i:1;a:2:{{s:3:\"sku\";s:6:\"SKU-42\";s:3:\"qty\";i:1;}}}}\
                 csrf|s:64:\"{STAMP}{}\";lang|s:5:\"en-GB\";last_seen|i:1764633600;\
                 flash|a:0:{{}}theme|s:4:\"dark\";prefs|s:",
                "5f3c9a1e7b2d4c6f8a0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d"
            ),
            "\";",
        ),
        Shape::Json => (
            format!(
                "{{\"cookie\":{{\"originalMaxAge\":86400000,\"expires\":\"2026-12-03T04:00:00.000Z\",\
                 \"httpOnly\":true,\"path\":\"/\"}},\"passport\":{{\"user\":\"{STAMP}\"}},\
                 \"user_id\":\"{STAMP}\",\"name\":\"Alice Martin\",\"role\":\"member\",\
                 \"cart\":[{{\"sku\":\"SKU-17\",\"qty\":2}},{{\"sku\":\"SKU-42\",\"qty\":1}}],\
                 \"csrf\":\"{STAMP}{}\",\"lang\":\"en-GB\",\"last_seen\":1764633600,\
                 \"flash\":{{}},\"theme\":\"dark\",\"prefs\":\"",
                "5f3c9a1e7b2d4c6f8a0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d"
            ),
            "\"}",
        ),
    };
    let stamps: Vec<usize> = head.match_indices(STAMP).map(|(at, _)| at).collect();
    // The padding string fills the rest; PHP spells its length first.
    let fixed = head.len() + tail.len();
    let mut pad_len = size.saturating_sub(fixed);
    let mut value = head;
    if shape == Shape::Php {
        let digits = |n: usize| n.to_string().len() + 1; // "<len>:"
        pad_len = size.saturating_sub(fixed + digits(pad_len) + 2);
        value.push_str(&format!("{pad_len}:\""));
    }
    value.extend((0..pad_len).map(letter));
    value.push_str(tail);
    (value.into_bytes(), stamps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_the_size_asked_and_well_formed() {
        for shape in [Shape::Opaque, Shape::Php, Shape::Json] {
            let (v, stamps) = build(shape, 826, 3);
            assert!(v.len().abs_diff(826) <= 2, "{shape:?}: {}", v.len());
            assert!(!stamps.is_empty());
            for &at in &stamps {
                assert!(v.len() >= at + 16);
            }
        }
        let (json, _) = build(Shape::Json, 826, 3);
        let parsed: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(parsed["passport"]["user"], "0000000000000000");
        let (php, _) = build(Shape::Php, 826, 3);
        let text = String::from_utf8(php).expect("text");
        assert_eq!(text.matches('|').count(), 10, "ten entries: {text}");
        // prefs|s:N:"…"; says its own length.
        let prefs = &text[text.find("prefs|s:").expect("prefs") + 8..];
        let (len, rest) = prefs.split_once(':').expect("length");
        let len: usize = len.parse().expect("a number");
        assert_eq!(rest.len(), len + 3, "{rest}");
    }
}
