//! The SQL lexers' shared knowledge: byte classes (white space, identifier, digit, operator
//! characters) and where SQL's quoted pieces end: strings, quoted identifiers, dollar quotes
//! and block comments. Shared by the templatizer (trace/templatize.rs), the SQL-file splitter
//! (trace/sql.rs) and the replay's transaction tracking (replay/txn.rs), which each decide for
//! themselves what an unterminated piece means (the rest of the text, or an error).

// -- byte classes of the lexers (templatizer and template writer) --------------------------

/// White space as PostgreSQL's lexer sees it.
pub const WS: u8 = 1;
/// May start an unquoted identifier or keyword (letters, `_`, non-ASCII bytes).
pub const IDENT_START: u8 = 2;
/// May continue an identifier (also digits and `$`).
pub const IDENT_CONT: u8 = 4;
/// An ASCII digit.
pub const DIGIT: u8 = 8;
/// An operator character.
pub const OP: u8 = 16;

static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut v = 0;
        if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == 0x0c || c == 0x0b {
            v |= WS;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            v |= IDENT_START | IDENT_CONT;
        }
        if c.is_ascii_digit() {
            v |= DIGIT | IDENT_CONT;
        }
        if c == b'$' {
            v |= IDENT_CONT;
        }
        match c {
            b'+' | b'-' | b'*' | b'/' | b'<' | b'>' | b'=' | b'~' | b'!' | b'@' | b'#' | b'%'
            | b'^' | b'&' | b'|' | b'`' | b'?' => v |= OP,
            _ => {}
        }
        t[i] = v;
        i += 1;
    }
    t
}

/// Whether byte `c` is in any of the classes of `class` (an OR of the constants above).
#[inline]
pub fn in_class(c: u8, class: u8) -> bool {
    CLASS[c as usize] & class != 0
}

// -- where quoted pieces end ---------------------------------------------------------------

/// End (exclusive) of the string or quoted identifier whose opening quote `q` is at `i`: a
/// doubled quote stays inside; with `backslash` (E-strings) a backslash escapes the next
/// byte. None if it is not terminated.
pub fn end_of_quoted(b: &[u8], i: usize, q: u8, backslash: bool) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let found = if backslash {
            memchr::memchr2(q, b'\\', b.get(j..)?)
        } else {
            memchr::memchr(q, b.get(j..)?)
        };
        let p = j + found?;
        // An escaping backslash or a doubled quote: both skip two bytes.
        if b[p] != b'\\' && b.get(p + 1) != Some(&q) {
            return Some(p + 1);
        }
        j = p + 2;
    }
}

/// Whether the `'` at `i` opens an E-string (backslash escapes): it follows a lone `E` or
/// `e`, not a word that ends in one (`like'x'`, `name'x'`).
pub fn opens_escape_string(b: &[u8], i: usize) -> bool {
    i > 0
        && matches!(b[i - 1], b'e' | b'E')
        && !(i > 1 && (is_tag_byte(b[i - 2]) || b[i - 2] == b'$'))
}

/// Whether `c` may continue a dollar-quote tag (and an unquoted identifier, minus `$`).
fn is_tag_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Length of the dollar-quote opening tag at `i` (`$$` or `$tag$`, the tag an identifier not
/// starting with a digit); None if the `$` there opens none (`$1`, a lone `$`).
pub fn dollar_tag_len(b: &[u8], i: usize) -> Option<usize> {
    let first = *b.get(i + 1)?;
    if first == b'$' {
        return Some(2);
    }
    if first.is_ascii_digit() || !is_tag_byte(first) {
        return None;
    }
    let mut j = i + 2;
    while j < b.len() && is_tag_byte(b[j]) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

/// End (exclusive) of the dollar-quoted string opening at `i` with a tag `tag_len` bytes
/// long (from [`dollar_tag_len`]); None if the closing tag never comes.
pub fn end_of_dollar_quoted(b: &[u8], i: usize, tag_len: usize) -> Option<usize> {
    let tag = &b[i..i + tag_len];
    let body = i + tag_len;
    memchr::memmem::find(&b[body..], tag).map(|k| body + k + tag_len)
}

/// End (exclusive) of the block comment opening (`/*`) at `i`; comments nest, as in
/// PostgreSQL. None if it is not closed.
pub fn end_of_block_comment(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j + 1 < b.len() {
        match (b[j], b[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => j += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted() {
        let b = b"'it''s' x";
        assert_eq!(end_of_quoted(b, 0, b'\'', false), Some(7));
        assert_eq!(end_of_quoted(b"E'a\\'b' x", 1, b'\'', true), Some(7));
        assert_eq!(end_of_quoted(b"'a\\'b' x", 0, b'\'', false), Some(4));
        assert_eq!(end_of_quoted(b"\"A\"\"b\".c", 0, b'"', false), Some(6));
        assert_eq!(end_of_quoted(b"'open", 0, b'\'', false), None);
        assert_eq!(end_of_quoted(b"'open''", 0, b'\'', false), None);
        assert_eq!(end_of_quoted(b"E'x\\", 1, b'\'', true), None);
        assert_eq!(end_of_quoted(b"'", 0, b'\'', false), None);
    }

    #[test]
    fn escape_strings() {
        assert!(opens_escape_string(b"E'x'", 1));
        assert!(opens_escape_string(b"= e'x'", 3));
        assert!(!opens_escape_string(b"like'x'", 4));
        assert!(!opens_escape_string(b"'x'", 0));
        assert!(!opens_escape_string(b"a'x'", 1));
    }

    #[test]
    fn dollar_quotes() {
        assert_eq!(dollar_tag_len(b"$$ x $$", 0), Some(2));
        assert_eq!(dollar_tag_len(b"$fn$ x $fn$", 0), Some(4));
        assert_eq!(dollar_tag_len(b"$1", 0), None);
        assert_eq!(dollar_tag_len(b"$ ", 0), None);
        assert_eq!(dollar_tag_len(b"$", 0), None);
        assert_eq!(dollar_tag_len(b"$a b$", 0), None);
        assert_eq!(dollar_tag_len("$é$".as_bytes(), 0), Some(4));
        assert_eq!(end_of_dollar_quoted(b"$f$ a;$$ $f$;", 0, 3), Some(12));
        assert_eq!(end_of_dollar_quoted(b"$f$ a", 0, 3), None);
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(end_of_block_comment(b"/* a /* b */ c */ d", 0), Some(17));
        assert_eq!(end_of_block_comment(b"/**/", 0), Some(4));
        assert_eq!(end_of_block_comment(b"/* a /* b */", 0), None);
        assert_eq!(end_of_block_comment(b"/*/", 0), None);
    }
}
