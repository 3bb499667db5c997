//! What a LOG message says about statements (the same for stderr, csvlog and jsonlog).
//!
//! Statements: `statement: SQL` (simple protocol, `log_statement`), `execute NAME: SQL` and
//! `execute NAME/PORTAL: SQL` (extended protocol; the values are in the DETAIL
//! `parameters: $1 = '...', $2 = NULL`), and the same two behind `duration: X ms  `
//! (`log_min_duration_statement` when `log_statement` did not log them already).
//! A standalone `duration: X ms` belongs to the session's last statement.
//! Ignored: `parse ...`/`bind ...` (the execute that follows is the statement),
//! `execute fetch from ...` (more rows from a portal already counted), and every other message.

/// A LOG message, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A statement; `extended` for `execute` (parameters come with the DETAIL).
    Statement {
        sql: &'a str,
        extended: bool,
        duration_us: Option<i64>,
    },
    /// A standalone `duration: X ms`.
    Duration(i64),
    Other,
}

/// `X.YYY` milliseconds (as PostgreSQL prints them) to microseconds.
fn parse_ms(s: &[u8]) -> Option<i64> {
    let mut whole = 0i64;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        whole = whole.checked_mul(10)?.checked_add(i64::from(s[i] - b'0'))?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac = 0i64;
    let mut scale = 1000i64;
    if i < s.len() && s[i] == b'.' {
        i += 1;
        let mut digits = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if digits < 4 {
                frac = frac * 10 + i64::from(s[i] - b'0');
                digits += 1;
            }
            i += 1;
        }
        // frac has `digits` decimals of a millisecond; scale to microseconds, rounding the 4th.
        for _ in digits..4 {
            frac *= 10;
        }
        frac = (frac + 5) / 10;
        scale = 1;
    }
    if i != s.len() {
        return None;
    }
    whole
        .checked_mul(1000)?
        .checked_add(if scale == 1 { frac } else { 0 })
}

/// `execute NAME: SQL` after the word `execute `: the SQL, or None for `fetch from`.
fn execute_sql(rest: &str) -> Option<&str> {
    if rest.starts_with("fetch from ") {
        return None;
    }
    let colon = rest.find(": ")?;
    Some(&rest[colon + 2..])
}

/// Cheap pre-check on the raw bytes: can `classify` return something other than `Other`?
/// Lets readers skip decoding the (many) parse/bind/connection messages.
#[inline]
pub fn may_matter(msg: &[u8]) -> bool {
    if msg.starts_with(b"statement: ") || msg.starts_with(b"execute ") {
        return true;
    }
    let Some(rest) = msg.strip_prefix(b"duration: ") else {
        return false;
    };
    let head = &rest[..rest.len().min(40)];
    match memchr::memmem::find(head, b" ms") {
        Some(k) => {
            let after = &rest[k + 3..];
            after.is_empty()
                || after.starts_with(b"  statement: ")
                || after.starts_with(b"  execute ")
        }
        None => false,
    }
}

/// Whether a message that `may_matter` can use a DETAIL (extended protocol).
#[inline]
pub fn wants_detail(msg: &[u8]) -> bool {
    if msg.starts_with(b"execute ") {
        return true;
    }
    let Some(rest) = msg.strip_prefix(b"duration: ") else {
        return false;
    };
    let head = &rest[..rest.len().min(40)];
    memchr::memmem::find(head, b" ms  execute ").is_some()
}

pub fn classify(msg: &str) -> Message<'_> {
    if let Some(sql) = msg.strip_prefix("statement: ") {
        return Message::Statement {
            sql,
            extended: false,
            duration_us: None,
        };
    }
    if let Some(rest) = msg.strip_prefix("execute ") {
        return match execute_sql(rest) {
            Some(sql) => Message::Statement {
                sql,
                extended: true,
                duration_us: None,
            },
            None => Message::Other,
        };
    }
    if let Some(rest) = msg.strip_prefix("duration: ") {
        let (num, after) = match rest.find(" ms") {
            Some(k) => (&rest[..k], &rest[k + 3..]),
            None => return Message::Other,
        };
        let Some(us) = parse_ms(num.as_bytes()) else {
            return Message::Other;
        };
        if after.is_empty() {
            return Message::Duration(us);
        }
        let after = after.trim_start_matches(' ');
        if let Some(sql) = after.strip_prefix("statement: ") {
            return Message::Statement {
                sql,
                extended: false,
                duration_us: Some(us),
            };
        }
        if let Some(rest) = after.strip_prefix("execute ") {
            if let Some(sql) = execute_sql(rest) {
                return Message::Statement {
                    sql,
                    extended: true,
                    duration_us: Some(us),
                };
            }
        }
    }
    Message::Other
}

/// Parse a DETAIL `parameters: $1 = '1', $2 = NULL, $3 = 'it''s'` into values by position.
/// Returns Ok(None) when the detail is not a parameter list, Err(byte offset in `detail`)
/// when it is one but malformed.
pub fn parse_parameters(detail: &str) -> Result<Option<Vec<Option<String>>>, (usize, String)> {
    let b = detail.as_bytes();
    let rest = if let Some(r) = detail.strip_prefix("parameters: ") {
        r
    } else if let Some(r) = detail.strip_prefix("Parameters: ") {
        r
    } else {
        return Ok(None);
    };
    let mut i = b.len() - rest.len();
    let mut values: Vec<Option<String>> = Vec::new();
    loop {
        if b.get(i) != Some(&b'$') {
            return Err((i, "expected `$n = ` in the parameter list".into()));
        }
        i += 1;
        let start = i;
        let mut n = 0usize;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 6 {
            n = n * 10 + usize::from(b[i] - b'0');
            i += 1;
        }
        if i == start || n == 0 || !detail[i..].starts_with(" = ") {
            return Err((start, "expected a parameter number and ` = `".into()));
        }
        i += 3;
        let value = if detail[i..].starts_with("NULL") {
            i += 4;
            None
        } else if b.get(i) == Some(&b'\'') {
            let mut v = String::new();
            let mut j = i + 1;
            loop {
                match memchr::memchr(b'\'', &b[j..]) {
                    None => return Err((i, "unterminated quoted parameter value".into())),
                    Some(k) => {
                        v.push_str(&detail[j..j + k]);
                        let q = j + k;
                        if b.get(q + 1) == Some(&b'\'') {
                            v.push('\'');
                            j = q + 2;
                        } else {
                            i = q + 1;
                            break;
                        }
                    }
                }
            }
            Some(v)
        } else {
            return Err((i, "expected a quoted value or NULL".into()));
        };
        if n > values.len() {
            values.resize(n, None);
        }
        values[n - 1] = value;
        if i == b.len() {
            return Ok(Some(values));
        }
        if !detail[i..].starts_with(", ") {
            return Err((i, "expected `, ` between parameters".into()));
        }
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statement_lines() {
        assert_eq!(
            classify("statement: select 1"),
            Message::Statement {
                sql: "select 1",
                extended: false,
                duration_us: None
            }
        );
        assert_eq!(
            classify("execute _pg3_0: select $1"),
            Message::Statement {
                sql: "select $1",
                extended: true,
                duration_us: None
            }
        );
        assert_eq!(
            classify("execute <unnamed>/C_1: select $1"),
            Message::Statement {
                sql: "select $1",
                extended: true,
                duration_us: None
            }
        );
        assert_eq!(
            classify("execute fetch from <unnamed>/C_1: select 1"),
            Message::Other
        );
        assert_eq!(classify("duration: 0.243 ms"), Message::Duration(243));
        assert_eq!(classify("duration: 12 ms"), Message::Duration(12_000));
        assert_eq!(classify("duration: 1.00051 ms"), Message::Duration(1001));
        assert_eq!(
            classify("duration: 0.040 ms  statement: select 42"),
            Message::Statement {
                sql: "select 42",
                extended: false,
                duration_us: Some(40)
            }
        );
        assert_eq!(
            classify("duration: 0.005 ms  execute <unnamed>: select * from t1 where a = $1"),
            Message::Statement {
                sql: "select * from t1 where a = $1",
                extended: true,
                duration_us: Some(5)
            }
        );
        assert_eq!(
            classify("duration: 0.3 ms  parse <unnamed>: select 1"),
            Message::Other
        );
        assert_eq!(
            classify("duration: 0.3 ms  bind x: select 1"),
            Message::Other
        );
        assert_eq!(classify("connection authorized: user=x"), Message::Other);
        assert_eq!(classify("duration: abc ms"), Message::Other);
    }

    #[test]
    fn pre_check_agrees_with_classify() {
        for m in [
            "statement: select 1",
            "execute x: select 1",
            "execute fetch from x: select 1",
            "duration: 0.243 ms",
            "duration: 0.040 ms  statement: select 42",
            "duration: 0.005 ms  execute <unnamed>: select 1",
            "duration: 0.3 ms  parse <unnamed>: select 1",
            "duration: 0.3 ms  bind x: select 1",
            "connection authorized: user=x",
            "duration: abc ms",
        ] {
            if classify(m) != Message::Other {
                assert!(may_matter(m.as_bytes()), "{m}");
            }
        }
        assert!(!may_matter(b"duration: 0.3 ms  parse <unnamed>: select 1"));
        assert!(!may_matter(b"checkpoint starting: time"));
    }

    #[test]
    fn parses_parameter_lists() {
        assert_eq!(
            parse_parameters("parameters: $1 = '1', $2 = 'it''s', $3 = NULL").unwrap(),
            Some(vec![Some("1".into()), Some("it's".into()), None])
        );
        assert_eq!(
            parse_parameters("parameters: $1 = 'a, $2 = ''b'''").unwrap(),
            Some(vec![Some("a, $2 = 'b'".into())])
        );
        assert_eq!(
            parse_parameters("prepare: PREPARE x AS select 1").unwrap(),
            None
        );
        assert!(parse_parameters("parameters: $1 = 'abc").is_err());
        assert!(parse_parameters("parameters: $1 = abc").is_err());
        assert!(parse_parameters("parameters: $1 = '1' $2").is_err());
        assert!(parse_parameters("parameters: $x").is_err());
    }
}
