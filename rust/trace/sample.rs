//! Subsets of a trace. Sessions and templates keep their ids (template counts are recounted),
//! so per-template settings and session indexes stay valid on a sample.

use super::model::Trace;

/// SplitMix64: a small, fixed PRNG so samples are reproducible across versions and platforms.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection (no modulo bias).
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next();
            if v < zone {
                return v % n;
            }
        }
    }
}

impl Trace {
    /// The statements at `indices` (any order, duplicates allowed; out-of-range ones ignored),
    /// in the order given.
    pub fn subset(&self, indices: &[usize]) -> Trace {
        let statements: Vec<_> = indices
            .iter()
            .filter_map(|&i| self.statements.get(i).cloned())
            .collect();
        let mut templates = self.templates.clone();
        for t in &mut templates {
            t.count = 0;
        }
        for s in &statements {
            if let Some(t) = templates.get_mut(s.template_id as usize) {
                t.count += 1;
            }
        }
        Trace {
            statements,
            sessions: self.sessions.clone(),
            templates,
        }
    }

    /// `n` statements drawn without replacement with `seed`, kept in trace order (so each
    /// session's statements stay in their order). `n >= len` returns the whole trace.
    pub fn sample(&self, n: usize, seed: u64) -> Trace {
        let len = self.statements.len();
        if n >= len {
            return self.subset(&(0..len).collect::<Vec<_>>());
        }
        // Floyd's algorithm: n distinct values from 0..len in O(n) draws.
        let mut rng = SplitMix64(seed);
        let mut chosen = std::collections::HashSet::with_capacity(n);
        for j in (len - n)..len {
            let t = rng.below(j as u64 + 1) as usize;
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        let mut idx: Vec<usize> = chosen.into_iter().collect();
        idx.sort_unstable();
        self.subset(&idx)
    }
}

#[cfg(test)]
mod tests {
    use crate::trace::model::{Session, Statement, Template, Trace};

    fn trace(n: usize) -> Trace {
        Trace {
            statements: (0..n)
                .map(|i| Statement {
                    session: (i % 3) as u32,
                    timestamp_us: i as i64,
                    template_id: (i % 2) as u32,
                    sql: format!("select {i}"),
                    params: vec![],
                    duration_us: None,
                })
                .collect(),
            sessions: (0..3)
                .map(|i| Session {
                    id: i.to_string(),
                    user: String::new(),
                    database: String::new(),
                })
                .collect(),
            templates: (0..2)
                .map(|i| Template {
                    id: i,
                    text: String::new(),
                    count: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn sample_is_reproducible_ordered_and_distinct() {
        let t = trace(1000);
        let a = t.sample(100, 7);
        let b = t.sample(100, 7);
        assert_eq!(a, b);
        assert_eq!(a.statements.len(), 100);
        assert!(a
            .statements
            .windows(2)
            .all(|w| w[0].timestamp_us < w[1].timestamp_us));
        assert_ne!(a, t.sample(100, 8));
        assert_eq!(a.templates.iter().map(|t| t.count).sum::<u64>(), 100);
        assert_eq!(t.sample(5000, 1).statements.len(), 1000);
    }
}
