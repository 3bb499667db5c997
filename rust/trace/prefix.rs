//! `log_line_prefix`: compile the setting into a matcher for stderr log lines, and detect it.
//!
//! Escapes with a fixed shape are matched by shape: `%m %t %s` (timestamp with zone), `%n`
//! (epoch), `%p %P %l %x %Q` (numbers), `%c` (hex.hex), `%v` (n/n), `%e` (SQLSTATE).
//! Free-text escapes (`%u %d %a %h %r %b %i` and unknown ones) take the text up to the next
//! literal of the prefix (trying later occurrences when the rest does not match), so each must be
//! followed by literal text or end the prefix. `%q` ends the prefix for lines of non-session
//! processes (postmaster, checkpointer...). Padding (`%-10u`, `%5p`) is accepted.
//! A prefix matches a line only when a severity (`LOG:  `, `ERROR:  `, `DETAIL:  `, ...) follows.

use std::ops::Range;

use super::error::TraceError;
use super::timestamp::{parse_datetime, parse_epoch};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Lit(Vec<u8>),
    Field { letter: u8, pad: i32 },
    Quit,
}

/// A compiled `log_line_prefix`.
#[derive(Debug, Clone)]
pub struct Prefix {
    pub text: String,
    items: Vec<Item>,
}

/// What a prefix told about one line. Ranges index the line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    pub timestamp_us: Option<i64>,
    pub pid: Option<Range<usize>>,
    pub session: Option<Range<usize>>,
    pub user: Option<Range<usize>>,
    pub database: Option<Range<usize>>,
    /// Where the severity starts.
    pub end: usize,
}

/// Message severities as they appear after the prefix, longest first where one is a prefix
/// of another (`DEBUG1` before `DEBUG`).
const SEVERITIES: &[&[u8]] = &[
    b"LOG",
    b"STATEMENT",
    b"DETAIL",
    b"ERROR",
    b"HINT",
    b"CONTEXT",
    b"QUERY",
    b"LOCATION",
    b"WARNING",
    b"NOTICE",
    b"INFO",
    b"FATAL",
    b"PANIC",
    b"DEBUG1",
    b"DEBUG2",
    b"DEBUG3",
    b"DEBUG4",
    b"DEBUG5",
    b"DEBUG",
];

/// If `rest` starts with a severity and `:  `, the severity and the length to the message.
pub fn severity(rest: &[u8]) -> Option<(&'static [u8], usize)> {
    for s in SEVERITIES {
        if rest.len() >= s.len() + 3 && rest.starts_with(s) && &rest[s.len()..s.len() + 3] == b":  "
        {
            return Some((s, s.len() + 3));
        }
    }
    None
}

/// Common prefixes tried by detection, most specific first (PostgreSQL's default `%m [%p] `,
/// Debian's `%m [%p] %q%u@%d `, pgBadger's recommendations, RDS).
pub const CANDIDATES: &[&str] = &[
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%t:%r:%u@%d:[%p]:",
    "%m [%p] %q%u@%d/%c ",
    "%m [%p] %q%u@%d ",
    "%t [%p] %q%u@%d ",
    "%m [%p-%l] %q%u@%d ",
    "%m %c %u %d ",
    "%m [%p] ",
    "%t [%p] ",
    "%m [%p]: ",
    "%t [%p]: ",
    "%m ",
    "%t ",
    "",
];

fn is_free_text(letter: u8) -> bool {
    !matches!(
        letter,
        b'm' | b't' | b's' | b'n' | b'p' | b'P' | b'l' | b'x' | b'Q' | b'c' | b'v' | b'e'
    )
}

impl Prefix {
    pub fn parse(text: &str) -> Result<Prefix, TraceError> {
        let bad = |message: String| TraceError::BadPrefix {
            prefix: text.to_string(),
            message,
        };
        let b = text.as_bytes();
        let mut items: Vec<Item> = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            i += 1;
            if i < b.len() && b[i] == b'%' {
                lit.push(b'%');
                i += 1;
                continue;
            }
            let mut pad: i32 = 0;
            let neg = i < b.len() && b[i] == b'-';
            if neg {
                i += 1;
            }
            while i < b.len() && b[i].is_ascii_digit() {
                pad = pad
                    .saturating_mul(10)
                    .saturating_add(i32::from(b[i] - b'0'));
                i += 1;
            }
            if neg {
                pad = -pad;
            }
            let Some(&letter) = b.get(i) else {
                return Err(bad("ends with an incomplete % escape".into()));
            };
            i += 1;
            if !lit.is_empty() {
                items.push(Item::Lit(std::mem::take(&mut lit)));
            }
            if letter == b'q' {
                items.push(Item::Quit);
            } else {
                items.push(Item::Field { letter, pad });
            }
        }
        if !lit.is_empty() {
            items.push(Item::Lit(lit));
        }
        for (k, item) in items.iter().enumerate() {
            if let Item::Field { letter, .. } = item {
                if is_free_text(*letter) {
                    let next = items[k + 1..].iter().find(|it| **it != Item::Quit);
                    if let Some(Item::Field { letter: other, .. }) = next {
                        return Err(bad(format!(
                            "%{} is directly followed by %{}: free-text escapes need literal text after them",
                            *letter as char, *other as char
                        )));
                    }
                }
            }
        }
        Ok(Prefix {
            text: text.to_string(),
            items,
        })
    }

    /// Match the prefix at the start of `line` (one physical line, without the newline).
    pub fn match_line(&self, line: &[u8]) -> Option<Fields> {
        let mut fields = Fields::default();
        if self.match_from(line, 0, 0, &mut fields) {
            Some(fields)
        } else {
            None
        }
    }

    fn match_from(&self, line: &[u8], k: usize, pos: usize, f: &mut Fields) -> bool {
        let Some(item) = self.items.get(k) else {
            if severity(&line[pos..]).is_some() {
                f.end = pos;
                return true;
            }
            return false;
        };
        match item {
            Item::Lit(l) => {
                line[pos..].starts_with(l) && self.match_from(line, k + 1, pos + l.len(), f)
            }
            Item::Quit => {
                if self.match_from(line, k + 1, pos, f) {
                    return true;
                }
                if severity(&line[pos..]).is_some() {
                    f.end = pos;
                    return true;
                }
                false
            }
            Item::Field { letter, pad } => {
                let mut p = pos;
                if *pad > 0 {
                    while p < line.len() && line[p] == b' ' {
                        p += 1;
                    }
                }
                if is_free_text(*letter) {
                    return self.match_free(line, k, p, *letter, *pad, pos, f);
                }
                let Some(len) = shape_len(*letter, &line[p..], f) else {
                    return false;
                };
                let value = p..p + len;
                let mut after = p + len;
                if *pad < 0 {
                    while after < line.len()
                        && line[after] == b' '
                        && after - pos < pad.unsigned_abs() as usize
                    {
                        after += 1;
                    }
                }
                let saved = f.clone();
                match letter {
                    b'p' => f.pid = Some(value),
                    b'c' => f.session = Some(value),
                    _ => {}
                }
                if self.match_from(line, k + 1, after, f) {
                    true
                } else {
                    *f = saved;
                    false
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn match_free(
        &self,
        line: &[u8],
        k: usize,
        p: usize,
        letter: u8,
        pad: i32,
        pos: usize,
        f: &mut Fields,
    ) -> bool {
        let next_lit = self.items[k + 1..].iter().find_map(|it| match it {
            Item::Lit(l) => Some(l.as_slice()),
            _ => None,
        });
        let mut search_from = p;
        loop {
            // Candidate end of the value: next occurrence of the following literal, or
            // (free text last in the prefix) the start of a severity.
            let end = match next_lit {
                Some(l) => match memchr::memmem::find(&line[search_from..], l) {
                    Some(off) => search_from + off,
                    None => return false,
                },
                None => {
                    let mut e = search_from;
                    loop {
                        if severity(&line[e..]).is_some() {
                            break e;
                        }
                        match memchr::memchr(b' ', &line[e..]) {
                            Some(off) => e += off + 1,
                            None => return false,
                        }
                    }
                }
            };
            let mut value_end = end;
            if pad != 0 {
                while value_end > p && line[value_end - 1] == b' ' {
                    value_end -= 1;
                }
            }
            let saved = f.clone();
            let value = p..value_end;
            match letter {
                b'u' => f.user = Some(value),
                b'd' => f.database = Some(value),
                _ => {}
            }
            if self.match_from(line, k + 1, end, f) {
                return true;
            }
            *f = saved;
            if end >= line.len() || end < pos {
                return false;
            }
            search_from = end + 1;
        }
    }
}

/// Length of a fixed-shape escape's value at the start of `s`; stores a timestamp in `f`.
fn shape_len(letter: u8, s: &[u8], f: &mut Fields) -> Option<usize> {
    let digits = |s: &[u8], from: usize| {
        let mut j = from;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    match letter {
        b'm' | b't' => {
            let (len, us) = parse_datetime(s)?;
            f.timestamp_us = Some(us);
            Some(len)
        }
        b's' => parse_datetime(s).map(|(len, _)| len),
        b'n' => {
            let (len, us) = parse_epoch(s)?;
            f.timestamp_us = Some(us);
            Some(len)
        }
        b'p' | b'l' | b'x' => {
            let j = digits(s, 0);
            (j > 0).then_some(j)
        }
        b'P' => Some(digits(s, 0)),
        b'Q' => {
            let from = usize::from(s.first() == Some(&b'-'));
            let j = digits(s, from);
            (j > from).then_some(j)
        }
        b'c' => {
            let hex = |from: usize| {
                let mut j = from;
                while j < s.len() && s[j].is_ascii_hexdigit() {
                    j += 1;
                }
                j
            };
            let a = hex(0);
            if a == 0 || s.get(a) != Some(&b'.') {
                return None;
            }
            let b = hex(a + 1);
            (b > a + 1).then_some(b)
        }
        b'v' => {
            let a = digits(s, 0);
            if a > 0 && s.get(a) == Some(&b'/') {
                let b = digits(s, a + 1);
                if b > a + 1 {
                    return Some(b);
                }
            }
            Some(0)
        }
        b'e' => (s.len() >= 5 && s[..5].iter().all(u8::is_ascii_alphanumeric)).then_some(5),
        _ => None,
    }
}

/// Pick the candidate prefix matching most of `sample`'s non-continuation lines
/// (at least half of them). Returns None when no candidate does.
pub fn detect(sample: &[u8]) -> Option<Prefix> {
    let lines: Vec<&[u8]> = sample
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'\t')
        .take(400)
        .collect();
    if lines.is_empty() {
        return None;
    }
    let mut best: Option<(usize, Prefix)> = None;
    for text in CANDIDATES {
        let Ok(p) = Prefix::parse(text) else { continue };
        let hits = lines.iter().filter(|l| p.match_line(l).is_some()).count();
        if hits * 2 >= lines.len() && hits > 0 && best.as_ref().is_none_or(|(h, _)| hits > *h) {
            best = Some((hits, p));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(line: &'a [u8], r: &Option<Range<usize>>) -> &'a [u8] {
        &line[r.clone().unwrap()]
    }

    #[test]
    fn matches_default_and_session_prefixes() {
        let p = Prefix::parse("%m [%p] %q%u@%d/%c ").unwrap();
        let line = b"2026-11-22 02:19:39.684 UTC [17301] postgres@postgres/6b02513b.4395 LOG:  statement: x";
        let f = p.match_line(line).unwrap();
        assert_eq!(text(line, &f.pid), b"17301");
        assert_eq!(text(line, &f.user), b"postgres");
        assert_eq!(text(line, &f.database), b"postgres");
        assert_eq!(text(line, &f.session), b"6b02513b.4395");
        assert_eq!(&line[f.end..f.end + 4], b"LOG:");
        let post = b"2026-11-22 02:19:35.646 UTC [16256] LOG:  starting PostgreSQL";
        let f = p.match_line(post).unwrap();
        assert_eq!(f.user, None);
        assert!(p.match_line(b"garbage LOG:  x").is_none());
        assert!(p
            .match_line(b"2026-11-22 02:19:35.646 UTC [16256] postgres@db/1.2 oops")
            .is_none());
    }

    #[test]
    fn free_text_backtracks_over_separators() {
        let p = Prefix::parse("%t [%p]: user=%u,db=%d,app=%a,client=%h ").unwrap();
        let line = b"2026-11-22 02:19:39 UTC [1]: user=bob,db=shop,app=psql interactive, x,client=[local] LOG:  statement: s";
        let f = p.match_line(line).unwrap();
        assert_eq!(text(line, &f.database), b"shop");
        assert_eq!(&line[f.end..f.end + 3], b"LOG");
    }

    #[test]
    fn rejects_ambiguous_and_incomplete_prefixes() {
        assert!(Prefix::parse("%u%d ").is_err());
        assert!(Prefix::parse("%m %").is_err());
        assert!(Prefix::parse("%m [%p] %u").is_ok());
    }

    #[test]
    fn detects_debian_prefix() {
        let log = b"2026-11-22 02:19:35.646 UTC [16256] LOG:  starting\n\
2026-11-22 02:19:39.684 UTC [17301] bob@shop LOG:  statement: select 1\n\
\tfrom t\n\
2026-11-22 02:19:39.684 UTC [17301] bob@shop LOG:  duration: 1.0 ms\n";
        assert_eq!(detect(log).unwrap().text, "%m [%p] %q%u@%d ");
        assert!(detect(b"nothing like a log\n").is_none());
    }
}
