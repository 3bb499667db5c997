//! EXPLAIN-plan featurization: EXPLAIN (FORMAT JSON) texts in, flat arrays out.
//!
//! Two phases, both parallel across plans with rayon and deterministic in order:
//! 1. [`parse_batch`]: each text is parsed by a streaming serde visitor into a pre-order
//!    `Vec<RawNode>` with strings borrowed from the input ([`parse`]);
//! 2. [`encode_batch`]: node counts fix every plan's rows in the batch arrays, then each
//!    plan writes its disjoint slices ([`encode`]).
//!
//! `parse_batch` alone is the floor the featurizer is benchmarked against.

pub mod catalog;
pub mod encode;
mod json_scalars;
pub mod parse;
pub mod vocab;

#[cfg(test)]
mod tests;

use rayon::prelude::*;

pub use catalog::PlanCatalog;
pub use encode::{Encoding, Layout, PlanSlices, TARGET_NAMES};
pub use parse::{parse_plan, short_path, ParsedPlan, PathError, RawNode, MAX_PLAN_DEPTH};

/// A malformed plan: its index in the batch, the JSON path, and what was wrong. The
/// message shows the path shortened ([`short_path`]); `path` keeps it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFormatError {
    pub plan: usize,
    pub path: String,
    pub message: String,
    /// Plan nodes nest deeper than [`MAX_PLAN_DEPTH`] at `path`.
    pub too_deep: bool,
}

impl std::fmt::Display for PlanFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (plan, path) = (self.plan, short_path(&self.path));
        if self.too_deep {
            // The cause first: the path of a 400-level plan is long even shortened.
            write!(
                f,
                "plan {plan} nests deeper than {MAX_PLAN_DEPTH} levels at {path}"
            )
        } else {
            write!(f, "plan {plan}: {path}: {}", self.message)
        }
    }
}

impl std::error::Error for PlanFormatError {}

/// Featurized plans: `n` nodes over `p` plans, node rows in plan order, each plan's
/// nodes in pre-order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureBatch {
    pub encoding: Encoding,
    /// Row-major `n x width` node features.
    pub features: Vec<f32>,
    pub width: usize,
    /// Node-type id per node (see [`Layout::node_type_names`]).
    pub node_type: Vec<i32>,
    /// Batch row of each node's parent, -1 for roots.
    pub parent: Vec<i32>,
    /// Parent-relationship id (see [`Layout::relationship_names`]), -1 for roots.
    pub relationship: Vec<i8>,
    /// `p + 1` offsets: plan `i` owns rows `offsets[i]..offsets[i + 1]`.
    pub offsets: Vec<i64>,
    /// TCNN only: 1-based batch row of the binarized left/right child, 0 = none.
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    /// Row-major `n x 4` ANALYZE targets ([`TARGET_NAMES`]) when any plan carries
    /// ANALYZE output (NaN for nodes of plans without it); empty otherwise.
    pub targets: Vec<f64>,
    /// Per plan, NaN when absent.
    pub planning_time: Vec<f64>,
    pub execution_time: Vec<f64>,
}

impl FeatureBatch {
    pub fn n_nodes(&self) -> usize {
        self.node_type.len()
    }

    pub fn n_plans(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// Below this many plans the batch runs on the calling thread.
const PARALLEL_MIN_PLANS: usize = 64;

/// Parse every plan (phase 1). The error, if any, is the one of the lowest plan index.
pub fn parse_batch<T: AsRef<[u8]> + Sync>(
    plans: &[T],
) -> Result<Vec<ParsedPlan<'_>>, PlanFormatError> {
    if plans.len() < PARALLEL_MIN_PLANS {
        return plans
            .iter()
            .enumerate()
            .map(|(i, t)| parse_indexed(i, t.as_ref()))
            .collect();
    }
    let results: Vec<Result<ParsedPlan<'_>, PlanFormatError>> = crate::pool::install(|| {
        plans
            .par_iter()
            .with_min_len(16)
            .enumerate()
            .map(|(i, t)| parse_indexed(i, t.as_ref()))
            .collect()
    });
    // Sequential collect keeps the first error by index, whatever thread found it.
    results.into_iter().collect()
}

fn parse_indexed(i: usize, text: &[u8]) -> Result<ParsedPlan<'_>, PlanFormatError> {
    parse_plan(text).map_err(|e| PlanFormatError {
        plan: i,
        path: e.path,
        message: e.message,
        too_deep: e.too_deep,
    })
}

/// Parse only (the benchmark floor): returns the number of nodes parsed.
pub fn parse_only<T: AsRef<[u8]> + Sync>(plans: &[T]) -> Result<usize, PlanFormatError> {
    Ok(parse_batch(plans)?.iter().map(|p| p.nodes.len()).sum())
}

/// Parse and encode a batch.
pub fn featurize<T: AsRef<[u8]> + Sync>(
    plans: &[T],
    catalog: &PlanCatalog,
    encoding: Encoding,
) -> Result<FeatureBatch, PlanFormatError> {
    let parsed = parse_batch(plans)?;
    Ok(encode_batch(&parsed, catalog, encoding))
}

/// Encode parsed plans into batch arrays (phase 2).
pub fn encode_batch(
    parsed: &[ParsedPlan<'_>],
    catalog: &PlanCatalog,
    encoding: Encoding,
) -> FeatureBatch {
    let layout = Layout::new(encoding, catalog);
    let width = layout.width();
    let mut offsets = Vec::with_capacity(parsed.len() + 1);
    offsets.push(0i64);
    let mut total = 0usize;
    for p in parsed {
        total += p.nodes.len();
        offsets.push(total as i64);
    }
    let has_targets = parsed
        .iter()
        .any(|p| p.nodes.iter().any(|n| n.actual_loops.is_some()));
    let tcnn = encoding == Encoding::Tcnn;

    let mut features = vec![0f32; total * width];
    let mut node_type = vec![0i32; total];
    let mut parent = vec![0i32; total];
    let mut relationship = vec![0i8; total];
    let mut left = vec![0i32; if tcnn { total } else { 0 }];
    let mut right = vec![0i32; if tcnn { total } else { 0 }];
    let mut targets = vec![0f64; if has_targets { total * 4 } else { 0 }];

    let mut jobs: Vec<(&ParsedPlan<'_>, usize, PlanSlices<'_>)> = Vec::with_capacity(parsed.len());
    {
        let (mut f, mut t, mut pa, mut re, mut l, mut r, mut tg) = (
            &mut features[..],
            &mut node_type[..],
            &mut parent[..],
            &mut relationship[..],
            &mut left[..],
            &mut right[..],
            &mut targets[..],
        );
        let mut base = 0usize;
        for p in parsed {
            let k = p.nodes.len();
            let (f0, f1) = std::mem::take(&mut f).split_at_mut(k * width);
            let (t0, t1) = std::mem::take(&mut t).split_at_mut(k);
            let (p0, p1) = std::mem::take(&mut pa).split_at_mut(k);
            let (e0, e1) = std::mem::take(&mut re).split_at_mut(k);
            let lk = if tcnn { k } else { 0 };
            let (l0, l1) = std::mem::take(&mut l).split_at_mut(lk);
            let (r0, r1) = std::mem::take(&mut r).split_at_mut(lk);
            let (g0, g1) =
                std::mem::take(&mut tg).split_at_mut(if has_targets { k * 4 } else { 0 });
            (f, t, pa, re, l, r, tg) = (f1, t1, p1, e1, l1, r1, g1);
            jobs.push((
                p,
                base,
                PlanSlices {
                    features: f0,
                    node_type: t0,
                    parent: p0,
                    relationship: e0,
                    left: l0,
                    right: r0,
                    targets: g0,
                },
            ));
            base += k;
        }
    }
    let run = |(p, base, slices): (&ParsedPlan<'_>, usize, PlanSlices<'_>)| {
        encode::encode_plan(&layout, catalog, p, base, slices)
    };
    if jobs.len() < PARALLEL_MIN_PLANS {
        jobs.into_iter().for_each(run);
    } else {
        crate::pool::install(|| jobs.into_par_iter().with_min_len(16).for_each(run));
    }

    FeatureBatch {
        encoding,
        features,
        width,
        node_type,
        parent,
        relationship,
        offsets,
        left,
        right,
        targets,
        planning_time: parsed
            .iter()
            .map(|p| p.planning_time.unwrap_or(f64::NAN))
            .collect(),
        execution_time: parsed
            .iter()
            .map(|p| p.execution_time.unwrap_or(f64::NAN))
            .collect(),
    }
}
