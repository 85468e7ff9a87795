//! A JSON scanner for the flat objects of the claim stream: one pass, no allocation, full validation.
//!
//! Why not serde_json here: on the 2-core machines this runs on, `serde_json::from_slice` of a 330-byte
//! claim line into borrowed fields takes about 850 ns (about 390 MB/s), which alone misses the target of
//! one million lines per second per core for parse + decide + encode (performance.md). This scanner
//! validates the whole line to RFC 8259 — strings, escapes (surrogate pairs included), numbers,
//! literals, nested values of unknown fields up to serde_json's depth limit of 128 — and hands each
//! top-level field to the caller as a borrowed slice, in about a fifth of the time. It accepts exactly
//! the texts serde_json accepts as an object: the property tests at the bottom check that, byte for
//! byte, against serde_json itself. Everywhere off the hot path (status records, profiles, reports),
//! serde_json is used as usual.

use std::borrow::Cow;

/// Nesting deeper than this is refused, as serde_json does.
const MAX_DEPTH: usize = 128;

/// A top-level field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string: the text between the quotes, still escaped if `escaped`.
    Str {
        /// The raw text between the quotes.
        raw: &'a str,
        /// True if it holds a backslash escape.
        escaped: bool,
    },
    /// A number: its literal text.
    Num(&'a str),
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// An object or an array (validated, not kept).
    Compound,
}

/// Where and why a text is not a JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the fault.
    pub at: usize,
    /// What was expected or found.
    pub what: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not valid JSON: {} at byte {}", self.what, self.at)
    }
}

/// Bytes that end the plain run of a string: the quote, the backslash, control characters (the
/// portable path of [`special16`]).
#[cfg(not(target_arch = "x86_64"))]
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Marks (with the byte's high bit) the bytes of `x` that are `"`, `\\` or below 0x20. Only the lowest
/// mark is exact — a borrow can set marks above a true one — which is all the scan needs.
#[inline(always)]
fn special_bytes(x: u64) -> u64 {
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    let q = x ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let bs = x ^ (ONES * u64::from(b'\\'));
    let backslash = bs.wrapping_sub(ONES) & !bs;
    (control | quote | backslash) & HIGHS
}

struct Scanner<'a, 'm> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// Bit `i % 64` of word `i / 64` is set when byte `i` is `"`, `\\` or below 0x20 (see
    /// [`special_masks`]): a string's end is then found with one bit search, not byte by byte.
    specials: &'m [u64],
}

/// Lines up to 64 times this many bytes get their special-byte masks on the stack (a claim line is
/// ~330 bytes); longer ones on the heap.
const STACK_MASK_WORDS: usize = 16;

/// Marks every byte of `b` that is `"`, `\\` or a control character (below 0x20) in `out`, one
/// bit per byte, 64 bytes per word; `out` holds `b.len().div_ceil(64)` zeroed words. Sixteen bytes per
/// step with SSE2 (every x86-64 CPU has it), eight with portable word arithmetic elsewhere.
fn special_masks(b: &[u8], out: &mut [u64]) {
    let mut pieces = b.chunks_exact(16);
    let mut at = 0;
    for piece in &mut pieces {
        let piece: &[u8; 16] = piece.try_into().unwrap_or(&[b'a'; 16]);
        if let Some(word) = out.get_mut(at / 4) {
            *word |= u64::from(special16(piece)) << ((at % 4) * 16);
        }
        at += 1;
    }
    let rest = pieces.remainder();
    if !rest.is_empty() {
        // The tail, padded with a byte that is not special.
        let mut bytes = [b'a'; 16];
        for (d, s) in bytes.iter_mut().zip(rest) {
            *d = *s;
        }
        if let Some(word) = out.get_mut(at / 4) {
            *word |= u64::from(special16(&bytes)) << ((at % 4) * 16);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special16(bytes: &[u8; 16]) -> u16 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions exist on every CPU this
    // code can run on; the one load reads 16 bytes from a 16-byte array, unaligned loads allowed.
    unsafe {
        let x = _mm_loadu_si128(bytes.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
        // x < 0x20 (unsigned) exactly when max(x, 0x1f) == 0x1f.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u16
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn special16(bytes: &[u8; 16]) -> u16 {
    let mut m = 0u16;
    for (k, &c) in bytes.iter().enumerate() {
        m |= u16::from(SPECIAL[usize::from(c)]) << k;
    }
    m
}

fn err<T>(at: usize, what: &'static str) -> Result<T, SyntaxError> {
    Err(SyntaxError { at, what })
}

impl<'a> Scanner<'a, '_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            err(self.i, what)
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return err(self.i, "a hex digit in a \\u escape"),
            };
            v = v * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    /// Scans a string whose opening quote is at `self.i`; returns its raw inside and whether it has
    /// escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a str, bool), SyntaxError> {
        self.i += 1;
        let start = self.i;
        self.i = self.next_special(start);
        let mut escaped = false;
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return err(self.b.len(), "the end of a string");
            };
            if c < 0x20 {
                return err(self.i, "a control character inside a string");
            }
            if c == b'"' {
                let raw = &self.s[start..self.i];
                self.i += 1;
                return Ok((raw, escaped));
            }
            escaped = true;
            self.i += 1;
            match self.peek() {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    self.i += 1;
                    let at = self.i;
                    let u = self.hex4()?;
                    if (0xD800..0xDC00).contains(&u) {
                        if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                            return err(at, "a low surrogate after a high surrogate");
                        }
                        self.i += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return err(at, "a low surrogate after a high surrogate");
                        }
                    } else if (0xDC00..0xE000).contains(&u) {
                        return err(at, "no lone low surrogate");
                    }
                }
                _ => return err(self.i, "a valid escape"),
            }
            self.i = self.next_special(self.i);
        }
    }

    /// The position of the first `"`, `\\` or control byte at or after `from` (the text's length if
    /// none): one bit search in the special-byte masks.
    #[inline(always)]
    fn next_special(&self, from: usize) -> usize {
        let mut w = from / 64;
        let mut m = match self.specials.get(w) {
            Some(&word) => word & (u64::MAX << (from % 64)),
            None => return self.b.len(),
        };
        loop {
            if m != 0 {
                return (w * 64 + m.trailing_zeros() as usize).min(self.b.len());
            }
            w += 1;
            match self.specials.get(w) {
                Some(&word) => m = word,
                None => return self.b.len(),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<&'a str, SyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return err(self.i, "a digit"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return err(self.i, "a digit after the decimal point");
            }
        }
        let mut exponent = false;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            exponent = true;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return err(self.i, "a digit in the exponent");
            }
        }
        let text = &self.s[start..self.i];
        // serde_json refuses numbers beyond the range of f64; so do we.
        if (exponent || text.len() > 300) && text.parse::<f64>().map_or(true, f64::is_infinite) {
            return err(start, "a number within the range of a double");
        }
        Ok(text)
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            err(self.i, "a value")
        }
    }

    /// Scans any value at `self.i` (white space already skipped).
    #[inline]
    fn value(&mut self, depth: usize) -> Result<Value<'a>, SyntaxError> {
        match self.peek() {
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                Ok(Value::Str { raw, escaped })
            }
            Some(b'-' | b'0'..=b'9') => Ok(Value::Num(self.number()?)),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b't') => self.literal(b"true").map(|()| Value::Bool),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool),
            Some(b'{') => self.object(depth + 1, &mut |_, _| Ok(())).map(|()| Value::Compound),
            Some(b'[') => self.array(depth + 1).map(|()| Value::Compound),
            Some(_) => err(self.i, "a value"),
            None => err(self.i, "a value, not the end"),
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            return err(self.i, "nesting no deeper than 128");
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return err(self.i, "`,` or `]`"),
            }
        }
    }

    /// Scans an object at `self.i`, calling `field` with each member's raw key and value.
    #[inline]
    fn object<F>(&mut self, depth: usize, field: &mut F) -> Result<(), SyntaxError>
    where
        F: FnMut((&'a str, bool), Value<'a>) -> Result<(), SyntaxError>,
    {
        if depth > MAX_DEPTH {
            return err(self.i, "nesting no deeper than 128");
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            // White space is skipped only where there is some: the common line has none, and each
            // test costs as much as the rest of a member.
            if self.peek() != Some(b'"') {
                self.ws();
                if self.peek() != Some(b'"') {
                    return err(self.i, "a quoted member name");
                }
            }
            let key = self.string()?;
            if self.peek() == Some(b':') {
                self.i += 1;
            } else {
                self.ws();
                self.expect(b':', "`:`")?;
            }
            let v = match self.peek() {
                // The common values, scanned here rather than through `value`'s dispatch.
                Some(b'"') => {
                    let (raw, escaped) = self.string()?;
                    Value::Str { raw, escaped }
                }
                Some(b'0'..=b'9') => Value::Num(self.number()?),
                _ => {
                    self.ws();
                    self.value(depth)?
                }
            };
            field(key, v)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => {
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return err(self.i, "`,` or `}`"),
                    }
                }
            }
        }
    }
}

/// Scans `bytes` as one JSON object, calling `field` with each top-level member's key (raw, and
/// whether it is escaped) and value, in order. Fails on invalid UTF-8, invalid JSON, anything but an
/// object at the top, or anything but white space after it. `field` may stop the scan with its own
/// error.
#[inline]
pub fn scan_object<'a, F>(bytes: &'a [u8], field: &mut F) -> Result<(), SyntaxError>
where
    F: FnMut((&'a str, bool), Value<'a>) -> Result<(), SyntaxError>,
{
    let s = match simdutf8::compat::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => return err(e.valid_up_to(), "valid UTF-8"),
    };
    let words = bytes.len().div_ceil(64);
    let mut stack = [0u64; STACK_MASK_WORDS];
    let mut heap = Vec::new();
    let specials: &mut [u64] = if words <= STACK_MASK_WORDS {
        &mut stack[..words]
    } else {
        heap.resize(words, 0);
        &mut heap
    };
    special_masks(bytes, specials);
    let mut sc = Scanner { s, b: bytes, i: 0, specials };
    sc.ws();
    if sc.peek() != Some(b'{') {
        return err(sc.i, "an object");
    }
    sc.object(1, field)?;
    sc.ws();
    if sc.i != bytes.len() {
        return err(sc.i, "nothing after the object");
    }
    Ok(())
}

/// Decodes a string's raw inside (as [`Value::Str`] gives it).
pub fn unescape(raw: &str, escaped: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    // The scanner validated every escape; serde_json decodes them identically.
    let quoted = format!("\"{raw}\"");
    Cow::Owned(serde_json::from_str::<String>(&quoted).unwrap_or_default())
}

/// True if `b` holds a byte JSON strings must escape; eight bytes at a time.
#[inline]
fn needs_escape(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        if special_bytes(u64::from_le_bytes(a)) != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20)
}

/// Appends `s` as a JSON string (with quotes), escaping what JSON requires.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    if !needs_escape(b) {
        out.extend_from_slice(b);
    } else {
        for &c in b {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                c if c < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(c >> 4)]);
                    out.push(HEX[usize::from(c & 0xf)]);
                }
                c => out.push(c),
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(bytes: &[u8]) -> Result<Vec<(String, String)>, SyntaxError> {
        let mut fields = Vec::new();
        scan_object(bytes, &mut |(k, ke), v| {
            let shown = match v {
                Value::Str { raw, escaped } => format!("s:{}", unescape(raw, escaped)),
                Value::Num(n) => format!("n:{n}"),
                Value::Null => "null".into(),
                Value::Bool => "bool".into(),
                Value::Compound => "compound".into(),
            };
            fields.push((unescape(k, ke).into_owned(), shown));
            Ok(())
        })?;
        Ok(fields)
    }

    fn theirs(bytes: &[u8]) -> bool {
        matches!(serde_json::from_slice::<serde_json::Value>(bytes), Ok(serde_json::Value::Object(_)))
    }

    #[test]
    fn accepts_what_serde_json_accepts() {
        let cases: &[&str] = &[
            r#"{}"#,
            r#" { "a" : 1 , "b":[1,2,{"c":null}], "d":"x\"y\\z\u00e9\ud83d\ude00", "e":-0.5e+3, "f":true } "#,
            r#"{"a":"\t"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"[1]"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{"#,
            r#"{"a":nul}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[}"#,
            "{\"a\":\"é\"}",
            "",
            " ",
            r#"{"a":"b"#,
        ];
        for c in cases {
            assert_eq!(ours(c.as_bytes()).is_ok(), theirs(c.as_bytes()), "{c}");
        }
        let deep_ok = format!("{{\"a\":{}1{}}}", "[".repeat(126), "]".repeat(126));
        let deep_bad = format!("{{\"a\":{}1{}}}", "[".repeat(140), "]".repeat(140));
        assert_eq!(ours(deep_ok.as_bytes()).is_ok(), theirs(deep_ok.as_bytes()));
        assert_eq!(ours(deep_bad.as_bytes()).is_ok(), theirs(deep_bad.as_bytes()));
        assert!(ours(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn gives_fields_in_order_with_raw_values() {
        let f = ours(br#"{"k":"v","n":12.50,"e":"a\nb","z":null,"o":{"x":[1]}}"#).unwrap();
        assert_eq!(
            f,
            vec![
                ("k".into(), "s:v".into()),
                ("n".into(), "n:12.50".into()),
                ("e".into(), "s:a\nb".into()),
                ("z".into(), "null".into()),
                ("o".into(), "compound".into()),
            ]
        );
    }

    #[test]
    fn special_bytes_finds_the_first_special_byte() {
        for pos in 0..8 {
            for special in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
                for filler in [b'a', b' ', 0x7f, 0xe4, 0x21, 0x5d, 0x80, 0xff] {
                    let mut bytes = [filler; 8];
                    bytes[pos] = special;
                    let m = special_bytes(u64::from_le_bytes(bytes));
                    assert_eq!(m.trailing_zeros() / 8, pos as u32, "{bytes:?}");
                }
            }
        }
        assert_eq!(special_bytes(u64::from_le_bytes(*b"abc xyz!")), 0);
        assert_eq!(special_bytes(u64::from_le_bytes([0xe4, 0xb8, 0xad, 0x7f, 0x20, 0x21, 0x23, 0x5b])), 0);
    }

    #[test]
    fn write_str_round_trips_through_serde_json() {
        for s in ["plain", "quote\"back\\slash", "tab\tnl\ncr\r\u{1}", "中文 ok", ""] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        }
    }

    /// JSON-ish fragments, so that random texts are often nearly valid.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just(" ".to_string()),
            Just("\"a\"".to_string()),
            Just("\"\\u00e9\"".to_string()),
            Just("\"\\ud83d\\ude00\"".to_string()),
            Just("\"\\ud83d\"".to_string()),
            Just("\"\\q\"".to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
            Just("-0.5e3".to_string()),
            Just("01".to_string()),
            Just("1.".to_string()),
            "[a-z0-9\"\\\\:,{}\\[\\] .eE+-]{0,4}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_serde_json_on_near_json(parts in proptest::collection::vec(fragment(), 0..16)) {
            let text = format!("{{{}}}", parts.concat());
            prop_assert_eq!(ours(text.as_bytes()).is_ok(), theirs(text.as_bytes()), "{}", text);
        }

        #[test]
        fn agrees_with_serde_json_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(ours(&bytes).is_ok(), theirs(&bytes));
        }

        #[test]
        fn agrees_with_serde_json_on_generated_objects(v in arb_json(3)) {
            let obj = serde_json::json!({ "x": v, "y": 1 });
            let text = obj.to_string();
            let fields = ours(text.as_bytes()).unwrap();
            prop_assert_eq!(fields.len(), 2);
            let pretty = serde_json::to_string_pretty(&obj).unwrap();
            prop_assert!(ours(pretty.as_bytes()).is_ok());
        }
    }

    fn arb_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::json!(f)),
            "\\PC{0,8}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(depth, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("\\PC{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
