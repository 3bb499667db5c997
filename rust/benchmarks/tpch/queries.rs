//! qgen-style substitution of the 22 TPC-H query templates, and TPC-H workload traces.
//!
//! Parameters are drawn from the domains of specification clause 2.4 (Q1..Q22, "Substitution
//! Parameters"), from a generator seeded by `(seed, stream, query)`, so a stream's queries are
//! the same whatever other streams or queries are generated.

use super::dists::*;
use super::fmt::{date_string, days_from_civil};
use super::query_text::TEMPLATES;
use super::{check_scale, TpchError};
use crate::benchmarks::rng::Rng;
use crate::trace::{templatize, Session, Statement, Template, Trace};

const QUERY_TAG: u64 = 0x51_0000;

/// First day of the month `months` after January of `year`.
fn month_start(year: i64, months: i64) -> String {
    let m = months % 12;
    date_string(days_from_civil(year + months / 12, m + 1, 1))
}

fn brand(rng: &mut Rng) -> String {
    format!("Brand#{}{}", rng.range(1, 5), rng.range(1, 5))
}

/// `n` distinct values of `[lo, hi]`.
fn distinct(rng: &mut Rng, n: usize, lo: i64, hi: i64) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::with_capacity(n);
    while out.len() < n {
        let v = rng.range(lo, hi);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Substitution parameters of query `number` (1..=22) as (name, value).
pub fn parameters(number: usize, rng: &mut Rng, scale: f64) -> Vec<(&'static str, String)> {
    let year = |rng: &mut Rng| format!("{}-01-01", rng.range(1993, 1997));
    let nation = |rng: &mut Rng| NATIONS[rng.index(25)].0.to_string();
    match number {
        1 => vec![("DELTA", rng.range(60, 120).to_string())],
        2 => vec![
            ("SIZE", rng.range(1, 50).to_string()),
            ("TYPE", rng.pick(&TYPE_S3).to_string()),
            ("REGION", rng.pick(&REGIONS).to_string()),
        ],
        3 => vec![
            ("SEGMENT", rng.pick(&SEGMENTS).to_string()),
            ("DATE", format!("1995-03-{:02}", rng.range(1, 31))),
        ],
        4 => vec![("DATE", month_start(1993, rng.range(0, 57)))],
        5 => vec![
            ("REGION", rng.pick(&REGIONS).to_string()),
            ("DATE", year(rng)),
        ],
        6 => vec![
            ("DATE", year(rng)),
            ("DISCOUNT", format!("0.0{}", rng.range(2, 9))),
            ("QUANTITY", rng.range(24, 25).to_string()),
        ],
        7 => {
            let n = distinct(rng, 2, 0, 24);
            vec![
                ("NATION1", NATIONS[n[0] as usize].0.to_string()),
                ("NATION2", NATIONS[n[1] as usize].0.to_string()),
            ]
        }
        8 => {
            let (name, region) = NATIONS[rng.index(25)];
            let ty = format!(
                "{} {} {}",
                rng.pick(&TYPE_S1),
                rng.pick(&TYPE_S2),
                rng.pick(&TYPE_S3)
            );
            vec![
                ("NATION", name.to_string()),
                ("REGION", REGIONS[region as usize].to_string()),
                ("TYPE", ty),
            ]
        }
        9 => vec![("COLOR", rng.pick(&COLORS).to_string())],
        10 => vec![("DATE", month_start(1993, rng.range(1, 24)))],
        11 => vec![
            ("NATION", nation(rng)),
            ("FRACTION", format!("{:.10}", 0.0001 / scale)),
        ],
        12 => {
            let m = distinct(rng, 2, 0, SHIP_MODES.len() as i64 - 1);
            vec![
                ("SHIPMODE1", SHIP_MODES[m[0] as usize].to_string()),
                ("SHIPMODE2", SHIP_MODES[m[1] as usize].to_string()),
                ("DATE", year(rng)),
            ]
        }
        13 => vec![
            ("WORD1", rng.pick(&Q13_WORD1).to_string()),
            ("WORD2", rng.pick(&Q13_WORD2).to_string()),
        ],
        14 => vec![("DATE", month_start(1993, rng.range(0, 59)))],
        15 => vec![("DATE", month_start(1993, rng.range(0, 57)))],
        16 => {
            let mut p = vec![
                ("BRAND", brand(rng)),
                (
                    "TYPE",
                    format!("{} {}", rng.pick(&TYPE_S1), rng.pick(&TYPE_S2)),
                ),
            ];
            const SIZES: [&str; 8] = [
                "SIZE1", "SIZE2", "SIZE3", "SIZE4", "SIZE5", "SIZE6", "SIZE7", "SIZE8",
            ];
            for (name, v) in SIZES.iter().zip(distinct(rng, 8, 1, 50)) {
                p.push((name, v.to_string()));
            }
            p
        }
        17 => vec![
            ("BRAND", brand(rng)),
            (
                "CONTAINER",
                format!("{} {}", rng.pick(&CONTAINER_S1), rng.pick(&CONTAINER_S2)),
            ),
        ],
        18 => vec![("QUANTITY", rng.range(312, 315).to_string())],
        19 => vec![
            ("QUANTITY1", rng.range(1, 10).to_string()),
            ("QUANTITY2", rng.range(10, 20).to_string()),
            ("QUANTITY3", rng.range(20, 30).to_string()),
            ("BRAND1", brand(rng)),
            ("BRAND2", brand(rng)),
            ("BRAND3", brand(rng)),
        ],
        20 => vec![
            ("COLOR", rng.pick(&COLORS).to_string()),
            ("DATE", year(rng)),
            ("NATION", nation(rng)),
        ],
        21 => vec![("NATION", nation(rng))],
        22 => {
            const CODES: [&str; 7] = ["I1", "I2", "I3", "I4", "I5", "I6", "I7"];
            CODES
                .iter()
                .zip(distinct(rng, 7, 10, 34))
                .map(|(n, v)| (*n, v.to_string()))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Replaces each `[NAME]` of `template` by its value.
fn substitute(template: &str, params: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in params {
        out = out.replace(&format!("[{name}]"), value);
    }
    out
}

/// Query `number` (1..=22) with its parameters drawn for `(seed, stream)`.
pub fn query(number: usize, scale: f64, seed: u64, stream: u64) -> Result<String, TpchError> {
    if !(1..=22).contains(&number) {
        return Err(TpchError::QueryNumber(number));
    }
    check_scale(scale)?;
    let mut rng = Rng::for_row(seed, QUERY_TAG + stream, number as u64);
    Ok(substitute(
        TEMPLATES[number - 1],
        &parameters(number, &mut rng, scale),
    ))
}

/// The template text of query `number` (1..=22) with its `[NAME]` parameter markers.
pub fn template(number: usize) -> Result<&'static str, TpchError> {
    TEMPLATES
        .get(number.wrapping_sub(1))
        .copied()
        .ok_or(TpchError::QueryNumber(number))
}

/// A TPC-H workload: `streams` sessions, each running `queries` (numbers 1..=22) once, in a
/// per-stream seeded order when `shuffle` is set (as qgen permutes streams), else as given.
/// Template ids are query number - 1; all 22 templates are listed (count 0 when unused), with
/// the templatizer's text.
pub fn trace(
    scale: f64,
    seed: u64,
    streams: u32,
    queries: &[usize],
    shuffle: bool,
) -> Result<Trace, TpchError> {
    if streams == 0 {
        return Err(TpchError::Streams);
    }
    // Template texts as the trace templatizer writes them (constants -> $n), so a TPC-H trace
    // and a parsed log of the same queries agree; every query has one structure.
    let mut templates: Vec<Template> = (1..=22)
        .map(|q| {
            Ok(Template {
                id: (q - 1) as u32,
                text: templatize(&query(q, scale, seed, 0)?).0,
                count: 0,
            })
        })
        .collect::<Result<_, TpchError>>()?;
    let mut per_stream: Vec<Vec<Statement>> = Vec::with_capacity(streams as usize);
    let mut sessions = Vec::with_capacity(streams as usize);
    for s in 0..streams {
        let mut order = queries.to_vec();
        if shuffle {
            let mut rng = Rng::for_row(seed, QUERY_TAG - 1, u64::from(s));
            for i in (1..order.len()).rev() {
                order.swap(i, rng.index(i + 1));
            }
        }
        let mut stmts = Vec::with_capacity(order.len());
        for q in order {
            let sql = query(q, scale, seed, u64::from(s))?;
            templates[q - 1].count += 1;
            stmts.push(Statement {
                session: s,
                timestamp_us: 0,
                template_id: (q - 1) as u32,
                sql,
                params: Vec::new(),
                duration_us: None,
            });
        }
        per_stream.push(stmts);
        sessions.push(Session {
            id: format!("tpch-stream-{s}"),
            user: String::new(),
            database: String::new(),
        });
    }
    // Log order: streams interleaved, i-th query of every stream before the (i+1)-th.
    let mut statements = Vec::with_capacity(per_stream.iter().map(Vec::len).sum());
    let longest = per_stream.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<_> = per_stream.into_iter().map(Vec::into_iter).collect();
    for _ in 0..longest {
        for it in iters.iter_mut() {
            statements.extend(it.next());
        }
    }
    Ok(Trace {
        statements,
        sessions,
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_substituted_and_deterministic() {
        for q in 1..=22 {
            for stream in 0..20 {
                let sql = query(q, 0.1, 7, stream).unwrap();
                assert!(!sql.contains('['), "Q{q} left a marker: {sql}");
                assert_eq!(sql, query(q, 0.1, 7, stream).unwrap());
            }
        }
        let differ = (1..=22)
            .filter(|&q| query(q, 1.0, 1, 0).unwrap() != query(q, 1.0, 2, 0).unwrap())
            .count();
        assert!(
            differ >= 20,
            "other seeds give other parameters ({differ}/22)"
        );
        assert!(query(0, 1.0, 1, 0).is_err());
        assert!(query(23, 1.0, 1, 0).is_err());
    }

    #[test]
    fn parameter_domains() {
        for stream in 0..200 {
            let mut rng = Rng::for_row(3, QUERY_TAG + stream, 1);
            let delta: i64 = parameters(1, &mut rng, 1.0)[0].1.parse().unwrap();
            assert!((60..=120).contains(&delta));
            let mut rng = Rng::for_row(3, QUERY_TAG + stream, 4);
            let d = parameters(4, &mut rng, 1.0)[0].1.clone();
            assert!(d.as_str() >= "1993-01-01" && d.as_str() <= "1997-10-01" && d.ends_with("-01"));
            let mut rng = Rng::for_row(3, QUERY_TAG + stream, 8);
            let p = parameters(8, &mut rng, 1.0);
            let nation = NATIONS.iter().find(|n| n.0 == p[0].1).unwrap();
            assert_eq!(REGIONS[nation.1 as usize], p[1].1);
            let mut rng = Rng::for_row(3, QUERY_TAG + stream, 22);
            let codes: Vec<i64> = parameters(22, &mut rng, 1.0)
                .iter()
                .map(|p| p.1.parse().unwrap())
                .collect();
            assert!(codes.iter().all(|c| (10..=34).contains(c)));
        }
        let mut rng = Rng::for_row(0, 0, 0);
        assert_eq!(parameters(11, &mut rng, 0.1)[1].1, "0.0010000000");
    }

    #[test]
    fn trace_has_streams_as_sessions() {
        let all: Vec<usize> = (1..=22).collect();
        let t = trace(0.1, 5, 3, &all, true).unwrap();
        assert_eq!(t.sessions.len(), 3);
        assert_eq!(t.statements.len(), 66);
        assert_eq!(t.templates.len(), 22);
        assert!(t.templates.iter().all(|t| t.count == 3));
        for s in 0..3 {
            let mut ids: Vec<u32> = t
                .statements
                .iter()
                .filter(|st| st.session == s)
                .map(|st| st.template_id)
                .collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..22).collect::<Vec<u32>>());
        }
        assert_eq!(t, trace(0.1, 5, 3, &all, true).unwrap());
        for st in &t.statements {
            let text = &t.templates[st.template_id as usize].text;
            assert_eq!(
                &templatize(&st.sql).0,
                text,
                "one template per query number"
            );
        }
        let fixed = trace(0.1, 5, 1, &[6, 1], false).unwrap();
        let ids: Vec<u32> = fixed.statements.iter().map(|s| s.template_id).collect();
        assert_eq!(ids, vec![5, 0]);
        assert!(trace(0.1, 5, 0, &all, true).is_err());
    }
}
