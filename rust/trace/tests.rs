//! Tests of the log readers on real PostgreSQL 15 output (testdata/pg15.*: one server run with
//! log_destination = 'stderr,csvlog,jsonlog', log_statement = 'all', then 'none', with
//! log_min_duration_statement = 0; psycopg simple + prepared statements, pgbench -i,
//! pgbench -M extended and -M prepared), on synthetic logs for chunking, and on malformed input.

use std::path::{Path, PathBuf};

use super::error::TraceError;
use super::model::Trace;
use super::reader::{parse_log, Format, LogOptions};

const PREFIX: &str = "%m [%p] %q%u@%d/%c ";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rust/trace/testdata")
        .join(name)
}

/// A unique temporary file with `content` (removed on drop).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dbgym-trace-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn opts(threads: usize) -> LogOptions {
    LogOptions {
        threads,
        ..LogOptions::default()
    }
}

fn parse(path: &Path, o: &LogOptions) -> Result<Trace, TraceError> {
    parse_log(path, o, &mut |_, _| true).map(|(t, _)| t)
}

#[test]
fn real_logs_agree_across_formats() {
    let csv = parse(&testdata("pg15.csv"), &opts(1)).unwrap();
    let json = parse(&testdata("pg15.json"), &opts(1)).unwrap();
    let stderr = parse(&testdata("pg15.log"), &opts(1)).unwrap();
    let stderr_given = parse(
        &testdata("pg15.log"),
        &LogOptions {
            log_line_prefix: Some(PREFIX.into()),
            ..opts(1)
        },
    )
    .unwrap();
    assert_eq!(csv.statements.len(), 66);
    assert_eq!(csv, json);
    assert_eq!(csv, stderr);
    assert_eq!(csv, stderr_given);
}

#[test]
fn real_log_statements_sessions_and_parameters() {
    let (t, stats) = parse_log(&testdata("pg15.csv"), &opts(1), &mut |_, _| true).unwrap();
    assert_eq!(stats.format, Format::Csv);
    assert_eq!(stats.skipped_lines, 0);
    let first = &t.statements[0];
    assert_eq!(first.sql, "create table t1(a int, b text)");
    assert_eq!(first.duration_us, Some(3008));
    assert_eq!(t.sessions[first.session as usize].id, "6b02513b.4395");
    assert_eq!(t.sessions[first.session as usize].user, "postgres");
    assert_eq!(t.sessions[first.session as usize].database, "postgres");
    // Extended protocol: prepared text, parameters with a doubled quote and a NULL.
    let ext: Vec<_> = t
        .statements
        .iter()
        .filter(|s| s.sql.contains("where a = $1 and b = $2"))
        .collect();
    assert_eq!(ext.len(), 3);
    assert_eq!(ext[0].sql, "select *\n  from t1\n where a = $1 and b = $2");
    assert_eq!(
        ext[0].params,
        vec![Some("1".to_string()), Some("it's".to_string())]
    );
    assert_eq!(ext[1].params, vec![Some("2".to_string()), None]);
    assert_eq!(ext[0].template_id, ext[1].template_id);
    assert_eq!(ext[0].duration_us, Some(46));
    // The log_statement = 'none' part: combined `duration: .. execute` lines, start = end - duration.
    assert_eq!(ext[2].duration_us, Some(11));
    assert_eq!(ext[2].sql, "select * from t1 where a = $1 and b = $2");
    assert_eq!(ext[2].template_id, ext[0].template_id);
    // Multi-line simple-protocol statement with a dollar-quoted string.
    assert!(t
        .statements
        .iter()
        .any(|s| s.sql == "select $$dollar ' quoted$$, 'multi\nline'"));
    // pgbench sessions: one per connection; -M extended and -M prepared statements have params.
    let upd = t
        .templates
        .iter()
        .find(|tp| tp.text == "update pgbench_accounts set abalance = abalance + $1 where aid = $2")
        .unwrap();
    assert_eq!(upd.count, 2);
    let sel = t
        .templates
        .iter()
        .find(|tp| tp.text == "select abalance from pgbench_accounts where aid = $1")
        .unwrap();
    assert_eq!(sel.count, 4);
    // Templates are numbered by first appearance and counts add up.
    assert!(t
        .templates
        .iter()
        .enumerate()
        .all(|(i, tp)| tp.id as usize == i));
    assert_eq!(t.templates.iter().map(|tp| tp.count).sum::<u64>(), 66);
    let first_use: Vec<u32> = {
        let mut seen = vec![];
        for s in &t.statements {
            if !seen.contains(&s.template_id) {
                seen.push(s.template_id);
            }
        }
        seen
    };
    assert_eq!(first_use, (0..t.templates.len() as u32).collect::<Vec<_>>());
    // Sessions that ran statements: psycopg x2, pgbench -i (2 connections), -M extended, -M prepared,
    // psql (alter system).
    assert!(t.sessions.len() >= 5, "{:?}", t.sessions);
}

/// Synthetic csvlog with traps for chunk splitting: quoted newlines followed by text that looks
/// like a record start, standalone durations, and parameters.
fn synthetic_csv(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let g = (i / 5) % 7;
        let sess = format!("6b0{g:05x}.{g:x}");
        let ts = format!(
            "2026-11-22 02:{:02}:{:02}.{:03} UTC",
            (i / 60000) % 60,
            (i / 1000) % 60,
            i % 1000
        );
        let head = format!(
            "{ts},\"u{0}\",\"db\",{1},\"[local]\",{sess},{i},\"SELECT\",{ts},3/1,0,LOG,00000,",
            g,
            100 + g
        );
        match i % 5 {
            0 => {
                let msg = format!(
                    "statement: select 'a\n{ts},\"x\",\"y\",1,\"[local]\",1.1,1,\"\",{ts},,0,LOG,00000,\"statement: nope', {i}"
                );
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(
                    format!(
                        "\"{}\",,,,,,,,,\"\",\"client backend\",,0\n",
                        msg.replace('"', "\"\"")
                    )
                    .as_bytes(),
                );
            }
            1 => {
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(
                    format!(
                        "\"duration: 0.{:03} ms\",,,,,,,,,\"\",\"client backend\",,0\n",
                        i % 1000
                    )
                    .as_bytes(),
                );
            }
            2 => {
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(
                    format!(
                        "\"execute <unnamed>: select *\n from t where a = $1 and b = $2\",\"parameters: $1 = '{i}', $2 = 'it''s \"\"q\"\"'\",,,,,,,,\"\",\"client backend\",,0\n"
                    )
                    .as_bytes(),
                );
            }
            3 => {
                out.extend_from_slice(format!("{ts},,,{},,6b0.1,1,,{ts},,0,LOG,00000,\"checkpoint starting: time\",,,,,,,,,\"\",\"checkpointer\",,0\n", 99).as_bytes());
            }
            _ => {
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(format!("\"duration: 1.5 ms  statement: update t set x = x - {i} where id = -{i}\",,,,,,,,,\"\",\"client backend\",,0\n").as_bytes());
            }
        }
    }
    out
}

#[test]
fn parallel_chunking_gives_the_sequential_result() {
    let data = synthetic_csv(3000);
    let f = TempFile::new("syn.csv", &data);
    let seq = parse(&f.0, &opts(1)).unwrap();
    assert_eq!(seq.statements.len(), 1800);
    assert_eq!(seq.templates.len(), 3);
    assert!(seq
        .statements
        .iter()
        .filter(|s| s.sql.starts_with("select 'a"))
        .all(|s| s.duration_us.is_some()));
    for (threads, block) in [
        (1, 4096),
        (2, 4096),
        (3, 10_000),
        (4, 100_000),
        (8, 5000),
        (2, 1 << 20),
    ] {
        let o = LogOptions {
            threads,
            block_per_thread: block,
            ..LogOptions::default()
        };
        let par = parse(&f.0, &o).unwrap();
        assert_eq!(par, seq, "threads={threads} block={block}");
    }
}

#[test]
fn records_longer_than_a_block_carry_over() {
    let mut data = synthetic_csv(200);
    let big = format!("select '{}', 1", "x\n,\"\"".repeat(20_000));
    let rec = format!(
        "2026-11-22 03:00:00.000 UTC,\"u\",\"db\",1,\"[local]\",a.1,1,\"\",2026-11-22 03:00:00 UTC,,0,LOG,00000,\"statement: {}\",,,,,,,,,\"\",\"client backend\",,0\n",
        big.replace('"', "\"\"")
    );
    data.extend_from_slice(rec.as_bytes());
    data.extend_from_slice(&synthetic_csv(200));
    let f = TempFile::new("big.csv", &data);
    let seq = parse(&f.0, &opts(1)).unwrap();
    assert_eq!(seq.statements.len(), 241);
    assert!(seq.statements.iter().any(|s| s.sql == big));
    for (threads, block) in [(1, 4096), (2, 4096), (3, 50_000)] {
        let o = LogOptions {
            threads,
            block_per_thread: block,
            ..LogOptions::default()
        };
        assert_eq!(
            parse(&f.0, &o).unwrap(),
            seq,
            "threads={threads} block={block}"
        );
    }
}

#[test]
fn stderr_and_json_chunking_gives_the_sequential_result() {
    for name in ["pg15.log", "pg15.json"] {
        let data = std::fs::read(testdata(name)).unwrap();
        let mut big = Vec::new();
        for _ in 0..40 {
            big.extend_from_slice(&data);
        }
        let f = TempFile::new(name, &big);
        let seq = parse(&f.0, &opts(1)).unwrap();
        assert_eq!(seq.statements.len(), 66 * 40);
        for (threads, block) in [(2, 4096), (3, 7777), (4, 1 << 16)] {
            let o = LogOptions {
                threads,
                block_per_thread: block,
                ..LogOptions::default()
            };
            assert_eq!(
                parse(&f.0, &o).unwrap(),
                seq,
                "{name} threads={threads} block={block}"
            );
        }
    }
}

fn parse_err(content: &[u8], name: &str, o: &LogOptions) -> String {
    let f = TempFile::new(name, content);
    match parse(&f.0, o) {
        Ok(t) => panic!("expected an error, got {} statements", t.statements.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_input_errors_name_file_line_and_offset() {
    let good = "2026-11-22 02:19:39.684 UTC,\"u\",\"d\",1,\"[local]\",a.1,1,\"\",2026-11-22 02:19:39 UTC,,0,LOG,00000,\"statement: select 1\",,,,,,,,,\"\",\"client backend\",,0\n";
    // Truncated record (unterminated quoted field at the end of the file).
    let truncated = format!("{good}{good}2026-11-22 02:19:39.684 UTC,\"u\",\"d\",1,\"[local]\",a.1,1,\"\",2026-11-22 02:19:39 UTC,,0,LOG,00000,\"statement: sel");
    let e = parse_err(truncated.as_bytes(), "t.csv", &opts(1));
    assert!(e.contains("t.csv:3: byte offset"), "{e}");
    assert!(e.contains("unterminated quoted field"), "{e}");
    // Garbled: too few fields.
    let garbled = format!("{good}2026-11-22 02:19:39.684 UTC,\"u\",oops\n{good}");
    let e = parse_err(garbled.as_bytes(), "g.csv", &opts(1));
    assert!(e.contains("g.csv:2: byte offset"), "{e}");
    assert!(e.contains("fields"), "{e}");
    // Invalid UTF-8 in a statement.
    let mut bad = good.as_bytes().to_vec();
    bad.extend_from_slice(good.replace("select 1", "select \u{1}\u{1}").as_bytes());
    let pos = bad.len() - 60;
    let k = bad[pos..].iter().position(|c| *c == 1).unwrap() + pos;
    bad[k] = 0xff;
    let e = parse_err(&bad, "u.csv", &opts(1));
    assert!(
        e.contains(&format!("u.csv:2: byte offset {k}: invalid UTF-8")),
        "{e}"
    );
    // stderr line that does not match the prefix.
    let log = "2026-11-22 02:19:39.684 UTC [1] LOG:  statement: select 1\nthis is not a log line\n";
    let o = LogOptions {
        log_line_prefix: Some("%m [%p] ".into()),
        ..opts(1)
    };
    let e = parse_err(log.as_bytes(), "s.log", &o);
    assert!(
        e.contains("s.log:2: byte offset 58: line does not match log_line_prefix"),
        "{e}"
    );
    // Undetectable prefix.
    let e = parse_err(b"hello\nworld\n", "x.log", &opts(1));
    assert!(e.contains("cannot detect the log_line_prefix"), "{e}");
    // Bad parameter list.
    let bad_params = "2026-11-22 02:19:39.684 UTC,\"u\",\"d\",1,\"[local]\",a.1,1,\"\",2026-11-22 02:19:39 UTC,,0,LOG,00000,\"execute x: select $1\",\"parameters: $1 = 'abc\",,,,,,,,\"\",\"client backend\",,0\n";
    let e = parse_err(bad_params.as_bytes(), "p.csv", &opts(1));
    let at = bad_params.find("'abc").unwrap();
    assert!(
        e.contains(&format!(
            "p.csv:1: byte offset {at}: unterminated quoted parameter value"
        )),
        "{e}"
    );
    // Garbled JSON.
    let e = parse_err(
        b"{\"timestamp\":\"2026-11-22 02:19:39.684 UTC\",\"error_severity\":\"LOG\"}\n{\"a\":\n",
        "j.json",
        &opts(1),
    );
    assert!(e.contains("j.json:2: byte offset"), "{e}");
    // A csvlog (or stderr log) read as jsonlog: what was expected, not serde's words.
    let json = LogOptions {
        format: Some(Format::Json),
        ..opts(1)
    };
    let e = parse_err(
        &std::fs::read(testdata("pg15.csv")).unwrap(),
        "c.csv",
        &json,
    );
    assert!(
        e.contains("c.csv:1: byte offset 0: not a jsonlog record (one JSON object per line); it looks like csvlog"),
        "{e}"
    );
    assert!(!e.contains("struct"), "{e}");
    let e = parse_err(
        &std::fs::read(testdata("pg15.log")).unwrap(),
        "s.log",
        &json,
    );
    assert!(
        e.contains("s.log:1: byte offset 0: not a jsonlog record"),
        "{e}"
    );
    assert!(e.contains("stderr log"), "{e}");
    // Missing file, directory.
    let missing = parse(Path::new("/nonexistent/dbgym/x.csv"), &opts(1)).unwrap_err();
    assert!(matches!(missing, TraceError::NotFound { .. }));
    assert_eq!(
        missing.to_string(),
        "/nonexistent/dbgym/x.csv: file not found"
    );
}

#[test]
fn lenient_mode_skips_and_counts_lines() {
    let good = "2026-11-22 02:19:39.684 UTC,\"u\",\"d\",1,\"[local]\",a.1,1,\"\",2026-11-22 02:19:39 UTC,,0,LOG,00000,\"statement: select 1\",,,,,,,,,\"\",\"client backend\",,0\n";
    let content = format!("{good}garbage line one\ngarbage, two\n{good}\u{0}\u{1}\n{good}");
    let f = TempFile::new("l.csv", content.as_bytes());
    let o = LogOptions {
        lenient: true,
        format: Some(Format::Csv),
        ..opts(1)
    };
    let (t, stats) = parse_log(&f.0, &o, &mut |_, _| true).unwrap();
    assert_eq!(t.statements.len(), 3);
    assert_eq!(stats.skipped_lines, 3);
    assert!(stats
        .first_skipped
        .unwrap()
        .contains("l.csv:2: byte offset"));
    let log = "2026-11-22 02:19:39.684 UTC [1] LOG:  statement: select 1\nnoise\n\tstray continuation\n2026-11-22 02:19:39.684 UTC [1] LOG:  statement: select\n\t2\n";
    let f = TempFile::new("l.log", log.as_bytes());
    let o = LogOptions {
        lenient: true,
        log_line_prefix: Some("%m [%p] ".into()),
        ..opts(2)
    };
    let (t, stats) = parse_log(&f.0, &o, &mut |_, _| true).unwrap();
    assert_eq!(
        t.statements
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>(),
        vec!["select 1", "select\n2"]
    );
    assert_eq!(stats.skipped_lines, 2);
}

/// xorshift64*: deterministic pseudo-random bytes for the no-panic tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let seeds = [
        std::fs::read(testdata("pg15.csv")).unwrap(),
        std::fs::read(testdata("pg15.log")).unwrap(),
        std::fs::read(testdata("pg15.json")).unwrap(),
    ];
    let alphabet = b"\"',\n\t$:;-0123456789. LOGexcutstamn{}[]\\/*\xff\xc3";
    for round in 0..300 {
        let data: Vec<u8> = if round % 3 == 0 {
            let len = (rng.next() % 2000) as usize;
            (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect()
        } else {
            let mut d = seeds[round % 3].clone();
            for _ in 0..(1 + rng.next() % 20) {
                let at = (rng.next() % d.len() as u64) as usize;
                match rng.next() % 3 {
                    0 => d[at] = alphabet[(rng.next() % alphabet.len() as u64) as usize],
                    1 => d.truncate(at),
                    _ => d.insert(at, alphabet[(rng.next() % alphabet.len() as u64) as usize]),
                }
                if d.is_empty() {
                    break;
                }
            }
            d
        };
        let f = TempFile::new("fuzz", &data);
        for format in [
            None,
            Some(Format::Csv),
            Some(Format::Stderr),
            Some(Format::Json),
        ] {
            for lenient in [false, true] {
                let o = LogOptions {
                    format,
                    lenient,
                    threads: 1 + round % 3,
                    block_per_thread: 4096,
                    log_line_prefix: if format == Some(Format::Stderr) {
                        Some(PREFIX.into())
                    } else {
                        None
                    },
                };
                let _ = parse(&f.0, &o);
            }
        }
        let _ = super::templatize::templatize(&String::from_utf8_lossy(&data));
        let _ = super::sql::split_statements(&String::from_utf8_lossy(&data));
    }
}

#[test]
fn sql_files_and_directories() {
    let dir = TempFile::new(
        "2.sql",
        b"select * from t where a = 1;\nselect * from t where a = 2;\n",
    );
    let d = dir.0.parent().unwrap();
    std::fs::write(d.join("10.sql"), "-- q10\nselect $x$;$x$ from u").unwrap();
    std::fs::write(d.join("1.sql"), "SELECT * FROM t WHERE a = 'x'").unwrap();
    std::fs::write(d.join("notes.txt"), "not sql").unwrap();
    let t = super::sql::parse_sql(d).unwrap();
    let sqls: Vec<&str> = t.statements.iter().map(|s| s.sql.as_str()).collect();
    assert_eq!(
        sqls,
        vec![
            "SELECT * FROM t WHERE a = 'x'",
            "select * from t where a = 1",
            "select * from t where a = 2",
            "-- q10\nselect $x$;$x$ from u"
        ]
    );
    assert_eq!(t.templates.len(), 2);
    assert_eq!(t.templates[0].count, 3);
    std::fs::write(d.join("3.sql"), "select 1;\nselect 'unterminated").unwrap();
    let e = super::sql::parse_sql(d).unwrap_err().to_string();
    assert!(
        e.contains("3.sql:2: byte offset 17: unterminated ' quote"),
        "{e}"
    );
}
