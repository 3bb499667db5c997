//! SQL sources: a file of `;`-separated statements, or a directory of `*.sql` files (in natural
//! order: `2.sql` before `10.sql`), each holding one or more statements. All statements go to one
//! session named after the path, with timestamp 0 (a SQL file has no timing).
//!
//! Splitting respects quotes (`'..'`, `E'..'`, `".."`), dollar quotes, and comments (`--`,
//! nested `/* */`). Not supported (clear error): psql meta-commands (`\set`...); SQL-standard
//! function bodies (`BEGIN ATOMIC ... END`) would be split at their inner `;`.

use std::path::{Path, PathBuf};

use super::builder::ChunkBuilder;
use super::error::TraceError;
use super::model::{Session, Statement, Template, Trace};
use crate::sqllex::{
    dollar_tag_len, end_of_block_comment, end_of_dollar_quoted, end_of_quoted, opens_escape_string,
};

/// Byte ranges of the statements of `text` (trimmed, without the `;`, empty ones dropped).
/// Err: (byte offset, message) for an unterminated quote/comment or a psql meta-command.
pub fn split_statements(text: &str) -> Result<Vec<std::ops::Range<usize>>, (usize, String)> {
    let b = text.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut has_content = false;
    let mut i = 0usize;
    let mut at_line_start = true;
    while i < n {
        let c = b[i];
        if at_line_start && c == b'\\' && !has_content {
            return Err((
                i,
                "psql meta-commands (lines starting with a backslash) are not supported".into(),
            ));
        }
        at_line_start = false;
        match c {
            b'\n' => {
                at_line_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = memchr::memchr(b'\n', &b[i..]).map_or(n, |k| i + k);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = end_of_block_comment(b, i)
                    .ok_or_else(|| (i, "unterminated /* comment".into()))?;
            }
            b'\'' | b'"' => {
                let backslash = c == b'\'' && opens_escape_string(b, i);
                i = end_of_quoted(b, i, c, backslash)
                    .ok_or_else(|| (i, format!("unterminated {} quote", c as char)))?;
                has_content = true;
            }
            b'$' => {
                has_content = true;
                match dollar_tag_len(b, i) {
                    Some(len) => {
                        i = end_of_dollar_quoted(b, i, len)
                            .ok_or_else(|| (i, "unterminated dollar-quoted string".into()))?;
                    }
                    None => i += 1,
                }
            }
            b';' => {
                if has_content {
                    out.push(trim(b, start, i));
                }
                has_content = false;
                i += 1;
                start = i;
            }
            _ => {
                has_content = true;
                // Words (so `$` inside identifiers is not a dollar quote).
                if is_word(c) {
                    while i < n && (is_word(b[i]) || b[i] == b'$') {
                        if b[i] == b'\'' {
                            break;
                        }
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            }
        }
    }
    if has_content {
        out.push(trim(b, start, n));
    }
    // Drop statements that are only comments.
    Ok(out
        .into_iter()
        .filter(|r| !super::templatize::templatize(&text[r.clone()]).0.is_empty())
        .collect())
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn trim(b: &[u8], mut s: usize, mut e: usize) -> std::ops::Range<usize> {
    while s < e && b[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    s..e
}

/// Natural order key: digit runs compare as numbers.
fn natural_key(name: &str) -> Vec<(u8, u64, String)> {
    let mut key = Vec::new();
    let mut chars = name.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut v = 0u64;
            while let Some(&d) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                v = v
                    .saturating_mul(10)
                    .saturating_add(u64::from(d as u8 - b'0'));
                chars.next();
            }
            key.push((0, v, String::new()));
        } else {
            let mut s = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    break;
                }
                s.push(d);
                chars.next();
            }
            key.push((1, 0, s));
        }
    }
    key
}

fn sql_files(dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TraceError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| x.eq_ignore_ascii_case("sql"))
        })
        .collect();
    files.sort_by_cached_key(|p| {
        natural_key(
            &p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    });
    if files.is_empty() {
        return Err(TraceError::Source {
            path: dir.to_path_buf(),
            message: "no *.sql files in this directory".into(),
        });
    }
    Ok(files)
}

fn parse_error(path: &Path, text: &[u8], offset: usize, message: String) -> TraceError {
    TraceError::Parse {
        path: path.to_path_buf(),
        line: memchr::memchr_iter(b'\n', &text[..offset.min(text.len())]).count() as u64 + 1,
        offset: offset as u64,
        message,
    }
}

/// Read a `.sql` file or a directory of them into a trace.
pub fn parse_sql(path: &Path) -> Result<Trace, TraceError> {
    let meta = std::fs::metadata(path).map_err(|e| TraceError::io(path, e))?;
    let files = if meta.is_dir() {
        sql_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut builder = ChunkBuilder::new();
    let mut statements = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| TraceError::io(file, e))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| parse_error(file, &bytes, e.valid_up_to(), "invalid UTF-8".into()))?;
        let ranges =
            split_statements(text).map_err(|(at, msg)| parse_error(file, &bytes, at, msg))?;
        for r in ranges {
            let sql = &text[r];
            let template_id = builder.template(sql);
            statements.push(Statement {
                session: 0,
                timestamp_us: 0,
                template_id,
                sql: sql.to_string(),
                params: Vec::new(),
                duration_us: None,
            });
        }
    }
    let mut templates: Vec<Template> = builder
        .templates
        .into_iter()
        .enumerate()
        .map(|(id, text)| Template {
            id: id as u32,
            text,
            count: 0,
        })
        .collect();
    for s in &statements {
        templates[s.template_id as usize].count += 1;
    }
    Ok(Trace {
        statements,
        sessions: vec![Session {
            id: path.display().to_string(),
            user: String::new(),
            database: String::new(),
        }],
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<&str> {
        split_statements(s)
            .unwrap()
            .into_iter()
            .map(|r| &s[r])
            .collect()
    }

    #[test]
    fn splits_around_quotes_comments_and_dollar_quotes() {
        assert_eq!(split("select 1; select 2;"), vec!["select 1", "select 2"]);
        assert_eq!(
            split("select ';' ; select \"a;b\" from t"),
            vec!["select ';'", "select \"a;b\" from t"]
        );
        assert_eq!(split("select E'\\';' ; x"), vec!["select E'\\';'", "x"]);
        assert_eq!(
            split(
                "create function f() returns int as $body$ select 1; $body$ language sql; select 2"
            ),
            vec![
                "create function f() returns int as $body$ select 1; $body$ language sql",
                "select 2"
            ]
        );
        assert_eq!(
            split("-- a; comment\nselect 1 /* ; */;\n-- only a comment;\n"),
            vec!["-- a; comment\nselect 1 /* ; */"]
        );
        assert_eq!(
            split("select a$1 from t; select 2"),
            vec!["select a$1 from t", "select 2"]
        );
        assert_eq!(split("  \n ; ;"), Vec::<&str>::new());
    }

    #[test]
    fn reports_unterminated_input_and_meta_commands() {
        assert_eq!(split_statements("select 1; select 'abc").unwrap_err().0, 17);
        assert!(split_statements("select $$abc").is_err());
        assert!(split_statements("select 1 /* abc").is_err());
        assert!(split_statements("select 1;\n\\set x 1\nselect 2").is_err());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["10.sql", "2.sql", "1.sql", "a.sql"];
        v.sort_by_cached_key(|s| natural_key(s));
        assert_eq!(v, vec!["1.sql", "2.sql", "10.sql", "a.sql"]);
    }
}
