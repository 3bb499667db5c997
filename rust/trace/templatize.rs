//! Templatizing: a statement's constants become numbered placeholders.
//!
//! One pass over the bytes with a one-token look-behind, no regex. Rules:
//! - constants: quoted strings (`'..'` with `''`, `E'..'` with backslash escapes, `B'..'`,
//!   `X'..'`, `N'..'`, `U&'..'`), dollar-quoted strings (`$tag$..$tag$`), numbers (integers,
//!   decimals, exponents, `0x..`, `1_000`), a sign directly before a number where an operand is
//!   expected (`= -1`, `(-1`, `, +2`, `select -3`; but `a-1` and `a - 1` are a binary minus), and
//!   `$n` parameters. Each becomes `$1`, `$2`, ... in order of appearance, so the same query sent
//!   with the simple protocol (literals) or the extended protocol (`$n`) gets the same template.
//! - unquoted identifiers and keywords are lowercased (PostgreSQL folds them); quoted
//!   identifiers (`"Foo"`) are kept verbatim; `t1`, `a$b` are identifiers, not constants.
//! - comments (`-- ..`, nested `/* .. */`) are dropped; whitespace is canonical: one space between
//!   tokens except after `(` `[` `.` `::`, before `,` `)` `]` `[` `.` `::` `;`, and before `(`
//!   when it follows an identifier (function call), so `count(*)` and `count ( * )` agree.
//! - trailing `;` are dropped (`begin;` = `begin`).
//! - `NULL`, `TRUE`, `FALSE` are constants too (a client-side binding writes them for parameter
//!   values), except after `IS` / `IS NOT`.
//! - a list of constants only, after `IN` or `ARRAY`, is squashed to one placeholder, as
//!   pg_stat_statements does from PostgreSQL 18: `x IN (1, 2)`, `x IN (7)` and `x IN ($1, $2,
//!   $3)` all become `x in ($1 /*, ... */)`, `ARRAY[1, 2]` becomes `array[$1 /*, ... */]`.
//!   Every constant of the list is still reported, so placeholder `$k` is the k-th constant
//!   only up to the first squashed list. Lists holding anything else (`IN (1, x)`,
//!   `IN ('a'::text)`, subqueries) and `VALUES` rows are left as they are.
//!
//! Never fails: whatever the bytes, it produces some template (unterminated quotes take the rest).

use std::ops::Range;

use super::template_out::{Emitter, Prev};
use crate::sqllex::{
    dollar_tag_len, end_of_block_comment, end_of_dollar_quoted, end_of_quoted, in_class,
    IDENT_CONT, IDENT_START, OP, WS,
};

/// Keywords after which an operand is expected, so a following `-1` is a negative constant.
fn is_operand_keyword(w: &[u8]) -> bool {
    matches!(
        w,
        b"select"
            | b"where"
            | b"and"
            | b"or"
            | b"not"
            | b"when"
            | b"then"
            | b"else"
            | b"case"
            | b"between"
            | b"like"
            | b"ilike"
            | b"similar"
            | b"in"
            | b"is"
            | b"limit"
            | b"offset"
            | b"having"
            | b"on"
            | b"return"
            | b"returning"
            | b"values"
            | b"distinct"
            | b"all"
            | b"any"
            | b"some"
            | b"by"
            | b"default"
            | b"using"
            | b"exists"
            | b"as"
            | b"from"
            | b"join"
            | b"over"
            | b"into"
            | b"set"
            | b"fetch"
            | b"first"
            | b"next"
            | b"to"
            | b"with"
            | b"array"
    )
}

/// Reusable templatizer output buffers.
#[derive(Default)]
pub struct Templatizer {
    /// Template text of the last call.
    pub text: String,
    /// Byte ranges of the constants in the last input (only filled when asked).
    pub constants: Vec<Range<usize>>,
}

impl Templatizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Templatize `sql` into `self.text`; with `want_constants`, fill `self.constants`.
    pub fn run(&mut self, sql: &str, want_constants: bool) {
        self.constants.clear();
        let mut out = std::mem::take(&mut self.text).into_bytes();
        out.clear();
        let consts = if want_constants {
            Some(&mut self.constants)
        } else {
            None
        };
        scan(sql.as_bytes(), &mut out, consts);
        // `begin;` and `begin` are the same statement.
        while matches!(out.last(), Some(b';' | b' ')) {
            out.pop();
        }
        // Every byte written is either copied from `sql` at a char boundary of whole tokens,
        // an ASCII byte, or an ASCII-lowercased byte of `sql`; lowercasing ASCII keeps UTF-8.
        self.text = match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
    }
}

/// Template text and constants of one statement (convenience for tests and Python).
pub fn templatize(sql: &str) -> (String, Vec<String>) {
    let mut t = Templatizer::new();
    t.run(sql, true);
    let consts = t
        .constants
        .iter()
        .map(|r| sql.get(r.clone()).unwrap_or_default().to_string())
        .collect();
    (t.text, consts)
}

/// End of a number starting at `i` (digit or `.` followed by a digit).
fn end_of_number(b: &[u8], i: usize) -> usize {
    let n = b.len();
    let mut j = i;
    if b[j] == b'0' && j + 1 < n && matches!(b[j + 1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
        let mut k = j + 2;
        while k < n && (b[k].is_ascii_hexdigit() || b[k] == b'_') {
            k += 1;
        }
        if k > j + 2 {
            return k;
        }
    }
    let digits = |mut k: usize| {
        while k < n
            && (b[k].is_ascii_digit() || (b[k] == b'_' && k + 1 < n && b[k + 1].is_ascii_digit()))
        {
            k += 1;
        }
        k
    };
    j = digits(j);
    if j < n && b[j] == b'.' && !(j + 1 < n && b[j + 1] == b'.') {
        j = digits(j + 1);
    }
    if j < n && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < n && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < n && b[k].is_ascii_digit() {
            j = digits(k);
        }
    }
    j
}

#[inline]
fn starts_number(b: &[u8], i: usize) -> bool {
    i < b.len()
        && (b[i].is_ascii_digit() || (b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit()))
}

fn scan(b: &[u8], out: &mut Vec<u8>, mut consts: Option<&mut Vec<Range<usize>>>) {
    let n = b.len();
    let mut e = Emitter::new(out);
    let mut push_const = |r: Range<usize>, e: &mut Emitter<'_>| {
        if let Some(c) = consts.as_deref_mut() {
            c.push(r);
        }
        e.placeholder();
    };
    let mut i = 0;
    while i < n {
        let c = b[i];
        if in_class(c, WS) {
            i += 1;
            continue;
        }
        // Comments.
        if c == b'-' && i + 1 < n && b[i + 1] == b'-' {
            i = match memchr::memchr(b'\n', &b[i..]) {
                Some(k) => i + k + 1,
                None => n,
            };
            continue;
        }
        if c == b'/' && i + 1 < n && b[i + 1] == b'*' {
            i = end_of_block_comment(b, i).unwrap_or(n);
            continue;
        }
        if c == b'\'' {
            let end = end_of_quoted(b, i, b'\'', false).unwrap_or(n);
            push_const(i..end, &mut e);
            i = end;
            continue;
        }
        if in_class(c, IDENT_START) {
            // Prefixed strings: E'..', B'..', X'..', N'..', U&'..'.
            if i + 1 < n
                && b[i + 1] == b'\''
                && matches!(c, b'e' | b'E' | b'b' | b'B' | b'x' | b'X' | b'n' | b'N')
            {
                let end = end_of_quoted(b, i + 1, b'\'', matches!(c, b'e' | b'E')).unwrap_or(n);
                push_const(i..end, &mut e);
                i = end;
                continue;
            }
            if (c == b'u' || c == b'U') && i + 2 < n && b[i + 1] == b'&' && b[i + 2] == b'\'' {
                let end = end_of_quoted(b, i + 2, b'\'', false).unwrap_or(n);
                push_const(i..end, &mut e);
                i = end;
                continue;
            }
            if (c == b'u' || c == b'U') && i + 2 < n && b[i + 1] == b'&' && b[i + 2] == b'"' {
                let end = end_of_quoted(b, i + 2, b'"', false).unwrap_or(n);
                e.space_before(false);
                e.out.extend_from_slice(&b[i..end]);
                e.prev = Prev::Operand;
                i = end;
                continue;
            }
            let mut j = i + 1;
            while j < n && in_class(b[j], IDENT_CONT) {
                j += 1;
            }
            let word = &b[i..j];
            if (word.eq_ignore_ascii_case(b"null")
                || word.eq_ignore_ascii_case(b"true")
                || word.eq_ignore_ascii_case(b"false"))
                && !after_is(e.out)
            {
                // A NULL/boolean literal is a value (what a client-side binding writes for a
                // parameter), except in `IS [NOT] NULL/TRUE/FALSE`.
                push_const(i..j, &mut e);
                i = j;
                continue;
            }
            e.space_before(false);
            let start = e.out.len();
            e.out.extend(b[i..j].iter().map(u8::to_ascii_lowercase));
            e.prev = if is_operand_keyword(&e.out[start..]) {
                Prev::Keyword
            } else {
                Prev::Ident
            };
            i = j;
            continue;
        }
        if starts_number(b, i) && !(c == b'.' && matches!(e.prev, Prev::Ident | Prev::Operand)) {
            let end = end_of_number(b, i);
            push_const(i..end, &mut e);
            i = end;
            continue;
        }
        match c {
            b'"' => {
                let end = end_of_quoted(b, i, b'"', false).unwrap_or(n);
                e.space_before(false);
                e.out.extend_from_slice(&b[i..end]);
                e.prev = Prev::Operand;
                i = end;
            }
            b'$' => {
                if i + 1 < n && b[i + 1].is_ascii_digit() {
                    let mut j = i + 1;
                    while j < n && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    push_const(i..j, &mut e);
                    i = j;
                } else if let Some(tag_len) = dollar_tag_len(b, i) {
                    let end = end_of_dollar_quoted(b, i, tag_len).unwrap_or(n);
                    push_const(i..end, &mut e);
                    i = end;
                } else {
                    e.space_before(false);
                    e.out.push(b'$');
                    e.prev = Prev::Other;
                    i += 1;
                }
            }
            b'(' | b'[' => {
                e.open(c);
                i += 1;
            }
            b')' | b']' => {
                e.close(c);
                i += 1;
            }
            b',' => {
                e.space_before(true);
                e.out.push(c);
                e.prev = Prev::Comma;
                i += 1;
            }
            b';' => {
                e.space_before(true);
                e.out.push(c);
                e.prev = Prev::Semi;
                i += 1;
            }
            b'.' => {
                e.space_before(true);
                e.out.push(c);
                e.prev = Prev::Glue;
                i += 1;
            }
            b':' => {
                if i + 1 < n && b[i + 1] == b':' {
                    e.space_before(true);
                    e.out.extend_from_slice(b"::");
                    e.prev = Prev::Glue;
                    i += 2;
                } else {
                    e.space_before(false);
                    e.out.push(b':');
                    e.prev = Prev::Op;
                    i += 1;
                }
            }
            _ if in_class(c, OP) => {
                // Operator run, cut before a comment start; PostgreSQL's rule: a multi-char
                // operator cannot end in + or - unless it contains one of ~ ! @ # % ^ & | ` ?
                let mut j = i + 1;
                while j < n && in_class(b[j], OP) {
                    if (b[j] == b'-' && j + 1 < n && b[j + 1] == b'-')
                        || (b[j] == b'/' && j + 1 < n && b[j + 1] == b'*')
                    {
                        break;
                    }
                    j += 1;
                }
                if j - i > 1
                    && !b[i..j].iter().any(|x| {
                        matches!(
                            x,
                            b'~' | b'!' | b'@' | b'#' | b'%' | b'^' | b'&' | b'|' | b'`' | b'?'
                        )
                    })
                {
                    while j - i > 1 && matches!(b[j - 1], b'+' | b'-') {
                        j -= 1;
                    }
                }
                if j - i == 1 && (c == b'-' || c == b'+') && e.prev.expects_operand() {
                    // A sign where an operand is expected: part of a following number.
                    let mut k = j;
                    while k < n && in_class(b[k], WS) {
                        k += 1;
                    }
                    if starts_number(b, k) {
                        let end = end_of_number(b, k);
                        push_const(i..end, &mut e);
                        i = end;
                        continue;
                    }
                }
                e.space_before(false);
                e.out.extend_from_slice(&b[i..j]);
                e.prev = Prev::Op;
                i = j;
            }
            _ => {
                // Anything else (backslash, braces, stray bytes): copy one UTF-8 sequence.
                let len = utf8_len(c).min(n - i);
                e.space_before(false);
                e.out.extend_from_slice(&b[i..i + len]);
                e.prev = Prev::Other;
                i += len;
            }
        }
    }
}

/// Whether the template so far ends with the word `is` or `is not`.
fn after_is(out: &[u8]) -> bool {
    let word_end = |o: &[u8], w: &[u8]| {
        o.ends_with(w) && (o.len() == w.len() || o[o.len() - w.len() - 1] == b' ')
    };
    word_end(out, b"is") || word_end(out, b"is not")
}

fn utf8_len(c: u8) -> usize {
    match c {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests;
