//! Column layouts of the two encodings and the per-plan encoder that writes one plan's
//! rows into its slice of the batch arrays.
//!
//! Numbers are log-scaled with `ln(1 + max(x, 0))`; categorical fields are one-hot with an
//! `<other>` column for values this build does not know; absent fields are all-zero.

use super::catalog::PlanCatalog;
use super::parse::{ParsedPlan, RawNode};
use super::vocab::{self, OTHER};

/// Which feature set to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// QPPNet-style: per-operator fields (costs, cardinality, width, relation/index
    /// one-hots, join type, parent relationship, scan direction, sort method, strategy,
    /// hash buckets, ...). [`Layout::type_mask`] says which columns apply to which type.
    Qppnet,
    /// Bao/TCNN-style: operator one-hot + log cost + log cardinality, plus binarized
    /// left/right child links.
    Tcnn,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "qppnet" => Some(Encoding::Qppnet),
            "tcnn" => Some(Encoding::Tcnn),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Qppnet => "qppnet",
            Encoding::Tcnn => "tcnn",
        }
    }
}

/// Names of the per-node targets (ANALYZE only), in column order.
pub const TARGET_NAMES: [&str; 4] = [
    "actual_startup_time",
    "actual_total_time",
    "actual_rows",
    "actual_loops",
];

/// Column offsets of one encoding for one catalog.
#[derive(Debug, Clone)]
pub struct Layout {
    pub encoding: Encoding,
    pub names: Vec<String>,
    ty: usize,
    startup: usize,
    total: usize,
    rows: usize,
    width: usize,
    parallel: usize,
    workers: usize,
    relationship: usize,
    join: usize,
    scan: usize,
    strategy: usize,
    partial: usize,
    operation: usize,
    sort_method: usize,
    sort_space: usize,
    hash_buckets: usize,
    hash_batches: usize,
    peak_memory: usize,
    relation: usize,
    index: usize,
    n_relations: usize,
    n_indexes: usize,
}

const UNUSED: usize = usize::MAX;

struct Builder {
    names: Vec<String>,
}

impl Builder {
    fn one(&mut self, name: &str) -> usize {
        self.names.push(name.to_owned());
        self.names.len() - 1
    }

    fn onehot<S: AsRef<str>>(&mut self, prefix: &str, values: &[S]) -> usize {
        let start = self.names.len();
        for v in values {
            self.names.push(format!("{prefix}={}", v.as_ref()));
        }
        self.names.push(format!("{prefix}={OTHER}"));
        start
    }
}

impl Layout {
    pub fn new(encoding: Encoding, catalog: &PlanCatalog) -> Self {
        let mut b = Builder { names: Vec::new() };
        let ty = b.onehot("type", vocab::NODE_TYPES);
        let mut l = Layout {
            encoding,
            names: Vec::new(),
            ty,
            startup: UNUSED,
            total: UNUSED,
            rows: UNUSED,
            width: UNUSED,
            parallel: UNUSED,
            workers: UNUSED,
            relationship: UNUSED,
            join: UNUSED,
            scan: UNUSED,
            strategy: UNUSED,
            partial: UNUSED,
            operation: UNUSED,
            sort_method: UNUSED,
            sort_space: UNUSED,
            hash_buckets: UNUSED,
            hash_batches: UNUSED,
            peak_memory: UNUSED,
            relation: UNUSED,
            index: UNUSED,
            n_relations: catalog.relations().len(),
            n_indexes: catalog.indexes().len(),
        };
        match encoding {
            Encoding::Tcnn => {
                l.total = b.one("est_total_cost");
                l.rows = b.one("est_rows");
            }
            Encoding::Qppnet => {
                l.startup = b.one("est_startup_cost");
                l.total = b.one("est_total_cost");
                l.rows = b.one("est_rows");
                l.width = b.one("est_width");
                l.parallel = b.one("parallel_aware");
                l.workers = b.one("workers_planned");
                l.relationship = b.onehot("relationship", vocab::RELATIONSHIPS);
                l.join = b.onehot("join_type", vocab::JOIN_TYPES);
                l.scan = b.onehot("scan_direction", vocab::SCAN_DIRECTIONS);
                l.strategy = b.onehot("strategy", vocab::STRATEGIES);
                l.partial = b.onehot("partial_mode", vocab::PARTIAL_MODES);
                l.operation = b.onehot("operation", vocab::OPERATIONS);
                l.sort_method = b.onehot("sort_method", vocab::SORT_METHODS);
                l.sort_space = b.one("sort_space_used");
                l.hash_buckets = b.one("hash_buckets");
                l.hash_batches = b.one("hash_batches");
                l.peak_memory = b.one("peak_memory_usage");
                l.relation = b.onehot("relation", catalog.relations());
                l.index = b.onehot("index", catalog.indexes());
            }
        }
        l.names = b.names;
        l
    }

    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Number of node-type ids (the vocabulary plus `<other>`).
    pub fn n_node_types() -> usize {
        vocab::NODE_TYPES.len() + 1
    }

    /// Names of the parent-relationship ids, `<other>` last.
    pub fn relationship_names() -> Vec<String> {
        vocab::RELATIONSHIPS
            .iter()
            .map(|s| (*s).to_owned())
            .chain(std::iter::once(OTHER.to_owned()))
            .collect()
    }

    /// Names of the node-type ids, `<other>` last.
    pub fn node_type_names() -> Vec<String> {
        vocab::NODE_TYPES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(std::iter::once(OTHER.to_owned()))
            .collect()
    }

    /// Row-major `n_node_types x width` mask: which columns an operator type can set
    /// (QPPNet's per-operator-type input vectors). The `<other>` type gets every column.
    pub fn type_mask(&self) -> Vec<bool> {
        let w = self.width();
        let n = Self::n_node_types();
        let mut mask = vec![false; n * w];
        let span = |row: &mut [bool], start: usize, len: usize| {
            if start != UNUSED {
                row[start..start + len].iter_mut().for_each(|m| *m = true);
            }
        };
        for t in 0..n {
            let row = &mut mask[t * w..(t + 1) * w];
            let name = vocab::NODE_TYPES.get(t).copied();
            if name.is_none() {
                row.iter_mut().for_each(|m| *m = true);
                continue;
            }
            span(row, self.ty, vocab::NODE_TYPES.len() + 1);
            for c in [
                self.startup,
                self.total,
                self.rows,
                self.width,
                self.parallel,
            ] {
                span(row, c, 1);
            }
            span(row, self.relationship, vocab::RELATIONSHIPS.len() + 1);
            let name = name.unwrap_or_default();
            let has = |types: &[&str]| types.contains(&name);
            if has(&["Nested Loop", "Merge Join", "Hash Join"]) {
                span(row, self.join, vocab::JOIN_TYPES.len() + 1);
            }
            if has(&["Index Scan", "Index Only Scan"]) {
                span(row, self.scan, vocab::SCAN_DIRECTIONS.len() + 1);
            }
            if has(&["Index Scan", "Index Only Scan", "Bitmap Index Scan"]) {
                span(row, self.index, self.n_indexes + 1);
            }
            if has(&[
                "Seq Scan",
                "Sample Scan",
                "Index Scan",
                "Index Only Scan",
                "Bitmap Heap Scan",
                "Tid Scan",
                "Tid Range Scan",
                "Foreign Scan",
                "Custom Scan",
                "ModifyTable",
            ]) {
                span(row, self.relation, self.n_relations + 1);
            }
            if has(&["Aggregate", "SetOp"]) {
                span(row, self.strategy, vocab::STRATEGIES.len() + 1);
            }
            if has(&["Aggregate"]) {
                span(row, self.partial, vocab::PARTIAL_MODES.len() + 1);
            }
            if has(&["ModifyTable", "Foreign Scan"]) {
                span(row, self.operation, vocab::OPERATIONS.len() + 1);
            }
            if has(&["Sort", "Incremental Sort"]) {
                span(row, self.sort_method, vocab::SORT_METHODS.len() + 1);
                span(row, self.sort_space, 1);
            }
            if has(&["Hash"]) {
                span(row, self.hash_buckets, 1);
                span(row, self.hash_batches, 1);
            }
            if has(&["Hash", "Aggregate", "Memoize"]) {
                span(row, self.peak_memory, 1);
            }
            if has(&["Gather", "Gather Merge"]) {
                span(row, self.workers, 1);
            }
        }
        mask
    }
}

#[inline]
fn log1p(x: f64) -> f32 {
    x.max(0.0).ln_1p() as f32
}

#[inline]
fn put_opt(row: &mut [f32], col: usize, v: Option<f64>) {
    if let Some(v) = v {
        row[col] = log1p(v);
    }
}

#[inline]
fn put_cat(row: &mut [f32], start: usize, vocab: &[&str], v: &Option<std::borrow::Cow<'_, str>>) {
    if let Some(v) = v {
        row[start + vocab::lookup(vocab, v)] = 1.0;
    }
}

/// The output slices one plan writes into (all already sized to the plan's node count;
/// `left`/`right` empty unless TCNN, `targets` empty unless the batch has targets).
pub struct PlanSlices<'o> {
    pub features: &'o mut [f32],
    pub node_type: &'o mut [i32],
    pub parent: &'o mut [i32],
    pub relationship: &'o mut [i8],
    pub left: &'o mut [i32],
    pub right: &'o mut [i32],
    pub targets: &'o mut [f64],
}

/// Write one plan's rows. `base` is the batch row of the plan's first node.
pub fn encode_plan(
    layout: &Layout,
    catalog: &PlanCatalog,
    plan: &ParsedPlan<'_>,
    base: usize,
    out: PlanSlices<'_>,
) {
    let w = layout.width();
    for (i, node) in plan.nodes.iter().enumerate() {
        let row = &mut out.features[i * w..(i + 1) * w];
        let ty = vocab::node_type_id(&node.node_type);
        out.node_type[i] = ty as i32;
        out.parent[i] = if node.parent < 0 {
            -1
        } else {
            (base + node.parent as usize) as i32
        };
        out.relationship[i] = match &node.relationship {
            Some(r) => vocab::lookup(vocab::RELATIONSHIPS, r) as i8,
            None => -1,
        };
        row[layout.ty + ty] = 1.0;
        row[layout.total] = log1p(node.total_cost);
        row[layout.rows] = log1p(node.plan_rows);
        if layout.encoding == Encoding::Qppnet {
            encode_qppnet(layout, catalog, node, row);
        }
        if !out.targets.is_empty() {
            let t = &mut out.targets[i * 4..(i + 1) * 4];
            t[0] = node.actual_startup_time.unwrap_or(f64::NAN);
            t[1] = node.actual_total_time.unwrap_or(f64::NAN);
            t[2] = node.actual_rows.unwrap_or(f64::NAN);
            t[3] = node.actual_loops.unwrap_or(f64::NAN);
        }
    }
    if !out.left.is_empty() {
        binarize(plan, base, out.left, out.right);
    }
}

fn encode_qppnet(layout: &Layout, catalog: &PlanCatalog, node: &RawNode<'_>, row: &mut [f32]) {
    row[layout.startup] = log1p(node.startup_cost);
    row[layout.width] = log1p(node.plan_width);
    if node.parallel_aware {
        row[layout.parallel] = 1.0;
    }
    put_opt(row, layout.workers, node.workers_planned);
    put_cat(
        row,
        layout.relationship,
        vocab::RELATIONSHIPS,
        &node.relationship,
    );
    put_cat(row, layout.join, vocab::JOIN_TYPES, &node.join_type);
    put_cat(
        row,
        layout.scan,
        vocab::SCAN_DIRECTIONS,
        &node.scan_direction,
    );
    put_cat(row, layout.strategy, vocab::STRATEGIES, &node.strategy);
    put_cat(
        row,
        layout.partial,
        vocab::PARTIAL_MODES,
        &node.partial_mode,
    );
    put_cat(row, layout.operation, vocab::OPERATIONS, &node.operation);
    put_cat(
        row,
        layout.sort_method,
        vocab::SORT_METHODS,
        &node.sort_method,
    );
    put_opt(row, layout.sort_space, node.sort_space_used);
    put_opt(row, layout.hash_buckets, node.hash_buckets);
    put_opt(row, layout.hash_batches, node.hash_batches);
    put_opt(row, layout.peak_memory, node.peak_memory_usage);
    if let Some(rel) = &node.relation {
        row[layout.relation + catalog.relation_id(rel)] = 1.0;
    }
    if let Some(idx) = &node.index {
        row[layout.index + catalog.index_id(idx)] = 1.0;
    }
}

/// Preference of a child for the binary left/right slots: the outer and inner inputs of
/// a join first, then members/subquery, then init plans and sub plans.
#[inline]
fn slot_rank(relationship: Option<&str>) -> u8 {
    match relationship {
        Some("Outer") => 0,
        Some("Inner") => 1,
        Some("InitPlan") | Some("SubPlan") => 3,
        _ => 2,
    }
}

/// Bao-style binary links: 1-based batch rows (0 = no child, i.e. the zero padding row).
/// Each node's left/right are its two highest-ranked children (stable in JSON order);
/// a unary node has right = 0; further children of n-ary nodes (Append members beyond
/// two, extra sub plans) stay unlinked (their own subtrees are still encoded).
fn binarize(plan: &ParsedPlan<'_>, base: usize, left: &mut [i32], right: &mut [i32]) {
    let n = plan.nodes.len();
    left.iter_mut().for_each(|v| *v = 0);
    right.iter_mut().for_each(|v| *v = 0);
    // rank of the child currently in each slot
    let mut rank_l = vec![u8::MAX; n];
    let mut rank_r = vec![u8::MAX; n];
    for (i, node) in plan.nodes.iter().enumerate() {
        if node.parent < 0 {
            continue;
        }
        let p = node.parent as usize;
        let r = slot_rank(node.relationship.as_deref());
        let me = (base + i + 1) as i32;
        if r < rank_l[p] {
            right[p] = left[p];
            rank_r[p] = rank_l[p];
            left[p] = me;
            rank_l[p] = r;
        } else if r < rank_r[p] {
            right[p] = me;
            rank_r[p] = r;
        }
    }
}
