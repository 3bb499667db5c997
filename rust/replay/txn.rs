//! Which statements open or close a transaction block.
//!
//! tokio-postgres does not expose the transaction status the server reports in
//! ReadyForQuery, so the replay tracks it from the statement text: the leading keywords of
//! each top-level statement in the text (a simple-protocol string may hold several,
//! separated by `;` outside quotes, comments and dollar-quoted bodies).

use crate::sqllex::{
    dollar_tag_len, end_of_block_comment, end_of_dollar_quoted, end_of_quoted, opens_escape_string,
};

/// What a statement text does to the session's transaction block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEffect {
    /// No transaction-control statement.
    None,
    /// Ends inside a transaction block (BEGIN, START TRANSACTION).
    Begin,
    /// Ends outside one (COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION).
    End,
    /// Transaction control that keeps the state (SAVEPOINT, RELEASE, ROLLBACK TO,
    /// COMMIT/ROLLBACK PREPARED, SET TRANSACTION).
    Other,
}

/// The net effect of `sql` (the last transaction-control statement in it wins).
pub fn txn_effect(sql: &str) -> TxnEffect {
    let b = sql.as_bytes();
    let mut net = TxnEffect::None;
    let mut pos = 0;
    while pos < b.len() {
        let (first, second) = leading_words(b, pos);
        let e = classify(first, second);
        if e != TxnEffect::None {
            net = e;
        }
        match next_statement(b, pos) {
            Some(p) => pos = p,
            None => break,
        }
    }
    net
}

fn classify(first: &[u8], second: &[u8]) -> TxnEffect {
    let is = |w: &[u8], k: &str| w.eq_ignore_ascii_case(k.as_bytes());
    if is(first, "begin") || (is(first, "start") && is(second, "transaction")) {
        TxnEffect::Begin
    } else if is(first, "commit") || is(first, "rollback") {
        if is(second, "prepared") || is(second, "to") {
            TxnEffect::Other
        } else {
            TxnEffect::End
        }
    } else if is(first, "end")
        || is(first, "abort")
        || (is(first, "prepare") && is(second, "transaction"))
    {
        TxnEffect::End
    } else if is(first, "savepoint")
        || is(first, "release")
        || (is(first, "set") && is(second, "transaction"))
    {
        TxnEffect::Other
    } else {
        TxnEffect::None
    }
}

/// Skips whitespace and comments from `pos`; returns the new position.
fn skip_space(b: &[u8], mut pos: usize) -> usize {
    loop {
        while pos < b.len() && b[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if b[pos..].starts_with(b"--") {
            pos = match memchr::memchr(b'\n', &b[pos..]) {
                Some(i) => pos + i + 1,
                None => b.len(),
            };
        } else if b[pos..].starts_with(b"/*") {
            pos = end_of_block_comment(b, pos).unwrap_or(b.len());
        } else {
            return pos;
        }
    }
}

fn word_at(b: &[u8], pos: usize) -> (&[u8], usize) {
    let mut end = pos;
    while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
        end += 1;
    }
    (&b[pos..end], end)
}

fn leading_words(b: &[u8], pos: usize) -> (&[u8], &[u8]) {
    let p = skip_space(b, pos);
    let (first, end) = word_at(b, p);
    let p2 = skip_space(b, end);
    let (second, _) = word_at(b, p2);
    (first, second)
}

/// Position just after the next top-level `;` at or after `pos`, if any.
fn next_statement(b: &[u8], mut pos: usize) -> Option<usize> {
    while pos < b.len() {
        match b[pos] {
            b';' => return Some(pos + 1),
            b'\'' | b'"' => {
                let escapes = b[pos] == b'\'' && opens_escape_string(b, pos);
                pos = end_of_quoted(b, pos, b[pos], escapes).unwrap_or(b.len());
            }
            b'-' if b[pos..].starts_with(b"--") => {
                pos = match memchr::memchr(b'\n', &b[pos..]) {
                    Some(i) => pos + i + 1,
                    None => b.len(),
                };
            }
            b'/' if b[pos..].starts_with(b"/*") => {
                pos = end_of_block_comment(b, pos).unwrap_or(b.len());
            }
            b'$' => {
                pos = match dollar_tag_len(b, pos) {
                    Some(len) => end_of_dollar_quoted(b, pos, len).unwrap_or(b.len()),
                    None => pos + 1,
                };
            }
            _ => pos += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_statements() {
        assert_eq!(txn_effect("BEGIN"), TxnEffect::Begin);
        assert_eq!(
            txn_effect("  begin isolation level serializable;"),
            TxnEffect::Begin
        );
        assert_eq!(txn_effect("START TRANSACTION READ ONLY"), TxnEffect::Begin);
        assert_eq!(txn_effect("commit"), TxnEffect::End);
        assert_eq!(txn_effect("END;"), TxnEffect::End);
        assert_eq!(txn_effect("ROLLBACK"), TxnEffect::End);
        assert_eq!(txn_effect("abort"), TxnEffect::End);
        assert_eq!(txn_effect("PREPARE TRANSACTION 'x'"), TxnEffect::End);
        assert_eq!(txn_effect("ROLLBACK TO SAVEPOINT a"), TxnEffect::Other);
        assert_eq!(txn_effect("COMMIT PREPARED 'x'"), TxnEffect::Other);
        assert_eq!(txn_effect("SAVEPOINT a"), TxnEffect::Other);
        assert_eq!(txn_effect("SELECT 1"), TxnEffect::None);
        assert_eq!(txn_effect("SELECT begin FROM t"), TxnEffect::None);
        assert_eq!(txn_effect("/* c */ -- x\n BEGIN"), TxnEffect::Begin);
        assert_eq!(txn_effect(""), TxnEffect::None);
    }

    #[test]
    fn several_statements_last_one_wins() {
        assert_eq!(txn_effect("BEGIN; UPDATE t SET a = 1"), TxnEffect::Begin);
        assert_eq!(
            txn_effect("BEGIN; UPDATE t SET a = 1; COMMIT;"),
            TxnEffect::End
        );
        assert_eq!(txn_effect("SELECT ';begin'; SELECT 2"), TxnEffect::None);
        assert_eq!(txn_effect("SELECT \"a;\" FROM t; begin"), TxnEffect::Begin);
        assert_eq!(
            txn_effect("SELECT E'\\';commit'; SELECT 1"),
            TxnEffect::None
        );
        assert_eq!(
            txn_effect("DO $f$ BEGIN PERFORM 1; END $f$; SELECT $1"),
            TxnEffect::None
        );
        assert_eq!(txn_effect("SELECT $$;commit$$"), TxnEffect::None);
        assert_eq!(txn_effect("SELECT 1 /* ; commit */"), TxnEffect::None);
        // `like'...'` is a plain string: its backslash escapes nothing.
        assert_eq!(
            txn_effect("SELECT 1 WHERE p like'C:\\'; COMMIT"),
            TxnEffect::End
        );
        assert_eq!(txn_effect("select 1 -- ; commit\n; commit"), TxnEffect::End);
    }
}
