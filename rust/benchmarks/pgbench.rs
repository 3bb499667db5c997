//! pgbench workloads as traces: the statements of pgbench's built-in `tpcb-like` and
//! `select-only` scripts, exactly as pgbench sends them (text and trailing semicolon; literals
//! substituted for `-M simple`, `$n` placeholders and text parameters for `-M extended`).
//!
//! Random values are drawn like pgbench's `random(lo, hi)` (uniform), from a seeded generator.

use super::rng::Rng;
use super::BenchmarkError;
use crate::trace::{templatize, Session, Statement, Template, Trace};

const PGBENCH_TAG: u64 = 0x9B_0000;

/// Which built-in pgbench script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    TpcbLike,
    SelectOnly,
}

impl Script {
    pub fn from_name(name: &str) -> Result<Script, BenchmarkError> {
        match name {
            "tpcb-like" | "tpcb" => Ok(Script::TpcbLike),
            "select-only" => Ok(Script::SelectOnly),
            other => Err(BenchmarkError::Script(other.to_string())),
        }
    }
}

/// One script command: text with `:var` references, in order of appearance.
struct Command {
    text: &'static str,
    vars: &'static [Var],
}

#[derive(Clone, Copy)]
enum Var {
    Aid,
    Bid,
    Tid,
    Delta,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Aid => ":aid",
            Var::Bid => ":bid",
            Var::Tid => ":tid",
            Var::Delta => ":delta",
        }
    }
}

const TPCB: [Command; 7] = [
    Command {
        text: "BEGIN;",
        vars: &[],
    },
    Command {
        text: "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;",
        vars: &[Var::Delta, Var::Aid],
    },
    Command {
        text: "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;",
        vars: &[Var::Aid],
    },
    Command {
        text: "UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;",
        vars: &[Var::Delta, Var::Tid],
    },
    Command {
        text: "UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;",
        vars: &[Var::Delta, Var::Bid],
    },
    Command {
        text: "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
               VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);",
        vars: &[Var::Tid, Var::Bid, Var::Aid, Var::Delta],
    },
    Command {
        text: "END;",
        vars: &[],
    },
];

const SELECT_ONLY: [Command; 1] = [Command {
    text: "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;",
    vars: &[Var::Aid],
}];

/// Text with each `:var` replaced by `$1, $2, ...` in order (pgbench numbers every occurrence).
fn placeholders(cmd: &Command) -> String {
    let mut text = cmd.text.to_string();
    for (i, v) in cmd.vars.iter().enumerate() {
        text = text.replacen(v.name(), &format!("${}", i + 1), 1);
    }
    text
}

/// Options of a pgbench trace.
#[derive(Debug, Clone)]
pub struct Options {
    pub script: Script,
    /// pgbench scale factor of the database (`-s`): 100,000 accounts, 10 tellers, 1 branch each.
    pub scale: u32,
    /// Sessions (pgbench `-c`).
    pub clients: u32,
    /// Transactions per client (pgbench `-t`).
    pub transactions: u32,
    /// `true`: `-M extended` ($n placeholders and parameters); `false`: `-M simple` literals.
    pub extended: bool,
    /// Transactions per second over all clients (pgbench `--rate`): Poisson arrivals per client.
    /// `None`: every timestamp is 0 (replay as fast as possible).
    pub rate: Option<f64>,
    pub seed: u64,
}

/// The pgbench workload as a trace; statements in time order (round-robin when `rate` is None).
pub fn trace(o: &Options) -> Result<Trace, BenchmarkError> {
    if o.scale == 0 || o.clients == 0 {
        return Err(BenchmarkError::Pgbench(
            "scale and clients must be >= 1".to_string(),
        ));
    }
    if let Some(r) = o.rate {
        if !r.is_finite() || r <= 0.0 {
            return Err(BenchmarkError::Pgbench(format!(
                "rate must be > 0, got {r}"
            )));
        }
    }
    let script: &[Command] = match o.script {
        Script::TpcbLike => &TPCB,
        Script::SelectOnly => &SELECT_ONLY,
    };
    let templates: Vec<Template> = script
        .iter()
        .enumerate()
        .map(|(i, c)| Template {
            id: i as u32,
            text: templatize(&placeholders(c)).0,
            count: u64::from(o.clients) * u64::from(o.transactions),
        })
        .collect();
    let extended: Vec<String> = script.iter().map(placeholders).collect();
    let scale = i64::from(o.scale);
    let per_client_rate = o.rate.map(|r| r / f64::from(o.clients));
    let mut statements =
        Vec::with_capacity(script.len() * o.clients as usize * o.transactions as usize);
    let mut clocks = vec![0f64; o.clients as usize];
    for t in 0..u64::from(o.transactions) {
        for c in 0..o.clients {
            let mut rng = Rng::for_row(o.seed, PGBENCH_TAG + u64::from(c), t);
            let aid = rng.range(1, 100_000 * scale);
            let bid = rng.range(1, scale);
            let tid = rng.range(1, 10 * scale);
            let delta = rng.range(-5000, 5000);
            let at = match per_client_rate {
                Some(r) => {
                    // Exponential inter-arrival time, as pgbench --rate schedules.
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    clocks[c as usize] += -(1.0 - u).ln() / r * 1e6;
                    clocks[c as usize] as i64
                }
                None => 0,
            };
            for (i, cmd) in script.iter().enumerate() {
                let values: Vec<String> = cmd
                    .vars
                    .iter()
                    .map(|v| match v {
                        Var::Aid => aid,
                        Var::Bid => bid,
                        Var::Tid => tid,
                        Var::Delta => delta,
                    })
                    .map(|v| v.to_string())
                    .collect();
                let (sql, params) = if o.extended {
                    (extended[i].clone(), values.into_iter().map(Some).collect())
                } else {
                    let mut text = cmd.text.to_string();
                    for (v, value) in cmd.vars.iter().zip(&values) {
                        text = text.replacen(v.name(), value, 1);
                    }
                    (text, Vec::new())
                };
                statements.push(Statement {
                    session: c,
                    timestamp_us: at,
                    template_id: i as u32,
                    sql,
                    params,
                    duration_us: None,
                });
            }
        }
    }
    if o.rate.is_some() {
        statements.sort_by_key(|s| s.timestamp_us);
    }
    let sessions = (0..o.clients)
        .map(|c| Session {
            id: format!("pgbench-client-{c}"),
            user: String::new(),
            database: String::new(),
        })
        .collect();
    Ok(Trace {
        statements,
        sessions,
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(script: Script, extended: bool) -> Options {
        Options {
            script,
            scale: 2,
            clients: 3,
            transactions: 50,
            extended,
            rate: None,
            seed: 1,
        }
    }

    #[test]
    fn select_only_statements_have_pgbench_shape() {
        let t = trace(&opts(Script::SelectOnly, false)).unwrap();
        assert_eq!(t.statements.len(), 150);
        assert_eq!(t.sessions.len(), 3);
        for s in &t.statements {
            let aid: i64 = s
                .sql
                .strip_prefix("SELECT abalance FROM pgbench_accounts WHERE aid = ")
                .and_then(|r| r.strip_suffix(';'))
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=200_000).contains(&aid));
        }
        let e = trace(&opts(Script::SelectOnly, true)).unwrap();
        assert_eq!(
            e.statements[0].sql,
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
        );
        assert_eq!(e.statements[0].params.len(), 1);
        assert_eq!(
            e.templates[0].text,
            "select abalance from pgbench_accounts where aid = $1"
        );
        for (s, x) in t.statements.iter().zip(&e.statements) {
            assert_eq!(
                templatize(&s.sql).0,
                templatize(&x.sql).0,
                "both protocols agree"
            );
        }
    }

    #[test]
    fn tpcb_transactions_and_rate_schedule() {
        let t = trace(&opts(Script::TpcbLike, true)).unwrap();
        assert_eq!(t.statements.len(), 7 * 150);
        assert_eq!(t.templates.len(), 7);
        let ins = &t.statements[5];
        assert_eq!(
            ins.sql,
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
             VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);"
        );
        assert_eq!(
            ins.params[2], t.statements[2].params[0],
            "same aid in one transaction"
        );
        let mut o = opts(Script::SelectOnly, false);
        o.rate = Some(1000.0);
        o.transactions = 2000;
        let r = trace(&o).unwrap();
        let last = r.statements.last().unwrap().timestamp_us as f64;
        // 6000 transactions at 1000/s: about 6 s of schedule.
        assert!((5.0e6..7.0e6).contains(&last), "schedule spans {last} us");
        assert!(r
            .statements
            .windows(2)
            .all(|w| w[0].timestamp_us <= w[1].timestamp_us));
        assert_eq!(r, trace(&o).unwrap());
    }
}
