//! Streaming parse of one `EXPLAIN (FORMAT JSON)` text into a flat, pre-order list of
//! plan nodes with borrowed strings. Only the fields the encoders read are kept; every
//! other value (Output lists, conditions, buffers, workers, JIT, settings, ...) is
//! skipped by serde_json's non-allocating skipper.
//!
//! Errors carry the JSON path of the value that failed (`$[0].Plan.Plans[1]["Total Cost"]`):
//! each level pushes its key or index onto `Ctx::path_rev` while an error unwinds, so the
//! happy path pays nothing for it.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json_scalars::{got_string, Bool, KeySeed, Num, Str};

/// Deepest plan-node nesting accepted (PostgreSQL's own planner stays far below it);
/// bounds the recursion of the parser, whose serde_json depth limit is lifted.
pub const MAX_PLAN_DEPTH: usize = 400;

/// One plan node as read from the JSON. Numbers PostgreSQL prints only for some node
/// types or only under ANALYZE are `None` when absent.
#[derive(Debug, Clone, PartialEq)]
pub struct RawNode<'a> {
    pub node_type: Cow<'a, str>,
    /// Index of the parent within the same plan, -1 for a root.
    pub parent: i32,
    pub relationship: Option<Cow<'a, str>>,
    pub relation: Option<Cow<'a, str>>,
    pub index: Option<Cow<'a, str>>,
    pub join_type: Option<Cow<'a, str>>,
    pub scan_direction: Option<Cow<'a, str>>,
    pub strategy: Option<Cow<'a, str>>,
    pub partial_mode: Option<Cow<'a, str>>,
    pub operation: Option<Cow<'a, str>>,
    pub sort_method: Option<Cow<'a, str>>,
    pub parallel_aware: bool,
    pub startup_cost: f64,
    pub total_cost: f64,
    pub plan_rows: f64,
    pub plan_width: f64,
    pub workers_planned: Option<f64>,
    pub sort_space_used: Option<f64>,
    pub hash_buckets: Option<f64>,
    pub hash_batches: Option<f64>,
    pub peak_memory_usage: Option<f64>,
    pub actual_startup_time: Option<f64>,
    pub actual_total_time: Option<f64>,
    pub actual_rows: Option<f64>,
    pub actual_loops: Option<f64>,
}

impl RawNode<'_> {
    fn new(parent: i32) -> Self {
        RawNode {
            node_type: Cow::Borrowed(""),
            parent,
            relationship: None,
            relation: None,
            index: None,
            join_type: None,
            scan_direction: None,
            strategy: None,
            partial_mode: None,
            operation: None,
            sort_method: None,
            parallel_aware: false,
            startup_cost: 0.0,
            total_cost: 0.0,
            plan_rows: 0.0,
            plan_width: 0.0,
            workers_planned: None,
            sort_space_used: None,
            hash_buckets: None,
            hash_batches: None,
            peak_memory_usage: None,
            actual_startup_time: None,
            actual_total_time: None,
            actual_rows: None,
            actual_loops: None,
        }
    }
}

/// One EXPLAIN output: its nodes in pre-order (parents before children, children in
/// JSON order). Several statements (rules can add queries) give several roots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedPlan<'a> {
    pub nodes: Vec<RawNode<'a>>,
    pub planning_time: Option<f64>,
    pub execution_time: Option<f64>,
}

/// A parse failure: where (JSON path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub path: String,
    pub message: String,
    /// Plan nodes nest deeper than [`MAX_PLAN_DEPTH`] at `path`.
    pub too_deep: bool,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", short_path(&self.path), self.message)
    }
}

/// Message of a plan nested deeper than [`MAX_PLAN_DEPTH`].
pub const TOO_DEEP: &str = "plan nodes nested deeper than 400 levels";
const _: () = assert!(MAX_PLAN_DEPTH == 400, "update TOO_DEEP");

/// A JSON path for messages: each run of more than 3 equal steps (a key with its index,
/// e.g. `.Plans[0]`) is shown as its first two and `...(xN)...` for the N others, so a
/// 400-level path reads `$[0].Plan.Plans[0].Plans[0]...(x398)...`.
pub fn short_path(path: &str) -> String {
    let mut steps: Vec<&str> = Vec::new();
    let b = path.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'$'));
    let mut start = i;
    let mut in_quote = false;
    while i < b.len() {
        match b[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'.' | b'[' if !in_quote && i > start => {
                // An index stays with the key before it (`.Plans[0]` is one step).
                let is_index = b[i] == b'[' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if !(is_index && b[start] == b'.' && !path[start..i].contains('[')) {
                    steps.push(&path[start..i]);
                    start = i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if start < b.len() {
        steps.push(&path[start..]);
    }
    let mut out = String::from(&path[..usize::from(b.first() == Some(&b'$'))]);
    let mut k = 0;
    while k < steps.len() {
        let mut j = k;
        while j < steps.len() && steps[j] == steps[k] {
            j += 1;
        }
        let run = j - k;
        if run <= 3 {
            for _ in 0..run {
                out.push_str(steps[k]);
            }
        } else {
            let _ = write!(out, "{0}{0}...(x{1})...", steps[k], run - 2);
        }
        k = j;
    }
    out
}

/// Parse one EXPLAIN (FORMAT JSON) text: a top-level array of statements
/// (`[{"Plan": ..., "Planning Time": ...}]`) or a single statement object (auto_explain).
pub fn parse_plan(text: &[u8]) -> Result<ParsedPlan<'_>, PathError> {
    // One whole-buffer UTF-8 check (ASCII fast path) lets serde_json borrow strings
    // without validating each one again.
    match std::str::from_utf8(text) {
        Ok(s) => run(serde_json::Deserializer::from_str(s)),
        Err(bad) => match run(serde_json::Deserializer::from_slice(text)) {
            Err(located) => Err(located),
            Ok(_) => Err(PathError {
                path: "$".to_owned(),
                message: format!("invalid UTF-8 at byte {}", bad.valid_up_to()),
                too_deep: false,
            }),
        },
    }
}

fn run<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<ParsedPlan<'de>, PathError> {
    let mut ctx = Ctx::default();
    let mut plan = ParsedPlan::default();
    de.disable_recursion_limit();
    let result = TopSeed {
        ctx: &mut ctx,
        plan: &mut plan,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match result {
        Ok(()) => Ok(plan),
        Err(e) => Err(PathError {
            path: ctx.path(),
            message: if ctx.too_deep {
                TOO_DEEP.to_owned()
            } else {
                e.to_string()
            },
            too_deep: ctx.too_deep,
        }),
    }
}

enum Seg<'de> {
    Index(usize),
    Key(Cow<'de, str>),
}

#[derive(Default)]
struct Ctx<'de> {
    /// Path segments pushed innermost-first while an error unwinds.
    path_rev: Vec<Seg<'de>>,
    depth: usize,
    /// The error is a plan nested deeper than [`MAX_PLAN_DEPTH`].
    too_deep: bool,
}

impl<'de> Ctx<'de> {
    fn path(&self) -> String {
        let mut s = String::from("$");
        for seg in self.path_rev.iter().rev() {
            match seg {
                Seg::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
                Seg::Key(k)
                    if !k.is_empty()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    let _ = write!(s, ".{k}");
                }
                Seg::Key(k) => {
                    let _ = write!(s, "[{k:?}]");
                }
            }
        }
        s
    }

    fn at_key<E>(&mut self, key: Cow<'de, str>, err: E) -> E {
        self.path_rev.push(Seg::Key(key));
        err
    }

    fn at_index<E>(&mut self, index: usize, err: E) -> E {
        self.path_rev.push(Seg::Index(index));
        err
    }
}

/// The whole EXPLAIN output: an array of statements, or one statement object.
struct TopSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    plan: &'c mut ParsedPlan<'de>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EXPLAIN (FORMAT JSON) output")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let seed = StatementSeed {
                ctx: &mut *self.ctx,
                plan: &mut *self.plan,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(())) => i += 1,
                Ok(None) => break,
                Err(e) => return Err(self.ctx.at_index(i, e)),
            }
        }
        if i == 0 {
            return Err(de::Error::custom(
                "expected at least one statement, got an empty array",
            ));
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        StatementSeed {
            ctx: self.ctx,
            plan: self.plan,
        }
        .visit_map(map)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(E::custom(format_args!(
            "expected an EXPLAIN (FORMAT JSON) array or object, got {}",
            got_string(v)
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(
            "expected an EXPLAIN (FORMAT JSON) array or object, got number",
        ))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(
            "expected an EXPLAIN (FORMAT JSON) array or object, got number",
        ))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(
            "expected an EXPLAIN (FORMAT JSON) array or object, got number",
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(
            "expected an EXPLAIN (FORMAT JSON) array or object, got boolean",
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(
            "expected an EXPLAIN (FORMAT JSON) array or object, got null",
        ))
    }
}

/// One statement: `{"Plan": {...}, "Planning Time": .., "Execution Time": .., ...}`.
struct StatementSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    plan: &'c mut ParsedPlan<'de>,
}

impl<'de> DeserializeSeed<'de> for StatementSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StatementSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a statement object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut saw_plan = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let res = match key.as_ref() {
                "Plan" => {
                    saw_plan = true;
                    map.next_value_seed(NodeSeed {
                        ctx: &mut *self.ctx,
                        nodes: &mut self.plan.nodes,
                        parent: -1,
                    })
                }
                "Planning Time" => map.next_value_seed(Num).map(|v| {
                    *self.plan.planning_time.get_or_insert(0.0) += v;
                }),
                "Execution Time" => map.next_value_seed(Num).map(|v| {
                    *self.plan.execution_time.get_or_insert(0.0) += v;
                }),
                _ => map.next_value::<IgnoredAny>().map(|_| ()),
            };
            if let Err(e) = res {
                return Err(self.ctx.at_key(key, e));
            }
        }
        if !saw_plan {
            return Err(de::Error::custom("missing key \"Plan\""));
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(E::custom(format_args!(
            "expected object, got {}",
            got_string(v)
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("expected object, got number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom("expected object, got number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom("expected object, got number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom("expected object, got boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("expected object, got null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("expected object, got array"))
    }
}

/// One plan node object; appends itself (then its children) to `nodes`.
struct NodeSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    nodes: &'c mut Vec<RawNode<'de>>,
    parent: i32,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

const HAS_TYPE: u8 = 1;
const HAS_STARTUP: u8 = 2;
const HAS_TOTAL: u8 = 4;
const HAS_ROWS: u8 = 8;
const HAS_WIDTH: u8 = 16;
const HAS_ALL: u8 = 31;

impl<'de> Visitor<'de> for NodeSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plan node object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.ctx.depth += 1;
        if self.ctx.depth > MAX_PLAN_DEPTH {
            self.ctx.too_deep = true;
            return Err(de::Error::custom(TOO_DEEP));
        }
        let me = self.nodes.len();
        let Ok(me_i32) = i32::try_from(me) else {
            return Err(de::Error::custom("more than 2^31 nodes in one plan"));
        };
        self.nodes.push(RawNode::new(self.parent));
        let mut seen = 0u8;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let res = match key.as_ref() {
                "Node Type" => map.next_value_seed(Str).map(|v| {
                    seen |= HAS_TYPE;
                    self.nodes[me].node_type = v;
                }),
                "Startup Cost" => map.next_value_seed(Num).map(|v| {
                    seen |= HAS_STARTUP;
                    self.nodes[me].startup_cost = v;
                }),
                "Total Cost" => map.next_value_seed(Num).map(|v| {
                    seen |= HAS_TOTAL;
                    self.nodes[me].total_cost = v;
                }),
                "Plan Rows" => map.next_value_seed(Num).map(|v| {
                    seen |= HAS_ROWS;
                    self.nodes[me].plan_rows = v;
                }),
                "Plan Width" => map.next_value_seed(Num).map(|v| {
                    seen |= HAS_WIDTH;
                    self.nodes[me].plan_width = v;
                }),
                "Plans" => map.next_value_seed(ChildrenSeed {
                    ctx: &mut *self.ctx,
                    nodes: &mut *self.nodes,
                    parent: me_i32,
                }),
                "Parent Relationship" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].relationship = Some(v)),
                "Relation Name" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].relation = Some(v)),
                "Index Name" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].index = Some(v)),
                "Join Type" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].join_type = Some(v)),
                "Scan Direction" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].scan_direction = Some(v)),
                "Strategy" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].strategy = Some(v)),
                "Partial Mode" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].partial_mode = Some(v)),
                "Operation" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].operation = Some(v)),
                "Sort Method" => map
                    .next_value_seed(Str)
                    .map(|v| self.nodes[me].sort_method = Some(v)),
                "Parallel Aware" => map
                    .next_value_seed(Bool)
                    .map(|v| self.nodes[me].parallel_aware = v),
                "Workers Planned" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].workers_planned = Some(v)),
                "Sort Space Used" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].sort_space_used = Some(v)),
                "Hash Buckets" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].hash_buckets = Some(v)),
                "Hash Batches" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].hash_batches = Some(v)),
                "Peak Memory Usage" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].peak_memory_usage = Some(v)),
                "Actual Startup Time" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].actual_startup_time = Some(v)),
                "Actual Total Time" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].actual_total_time = Some(v)),
                "Actual Rows" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].actual_rows = Some(v)),
                "Actual Loops" => map
                    .next_value_seed(Num)
                    .map(|v| self.nodes[me].actual_loops = Some(v)),
                _ => map.next_value::<IgnoredAny>().map(|_| ()),
            };
            if let Err(e) = res {
                return Err(self.ctx.at_key(key, e));
            }
        }
        if seen != HAS_ALL {
            let missing = [
                (HAS_TYPE, "Node Type"),
                (HAS_STARTUP, "Startup Cost"),
                (HAS_TOTAL, "Total Cost"),
                (HAS_ROWS, "Plan Rows"),
                (HAS_WIDTH, "Plan Width"),
            ]
            .iter()
            .find(|(bit, _)| seen & bit == 0)
            .map_or("Node Type", |(_, name)| name);
            let hint = if seen & HAS_TYPE != 0 {
                " (EXPLAIN with COSTS OFF cannot be featurized)"
            } else {
                ""
            };
            return Err(de::Error::custom(format_args!(
                "missing key {missing:?}{hint}"
            )));
        }
        self.ctx.depth -= 1;
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(E::custom(format_args!(
            "expected plan node object, got {}",
            got_string(v)
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("expected plan node object, got number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom("expected plan node object, got number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom("expected plan node object, got number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom("expected plan node object, got boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("expected plan node object, got null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("expected plan node object, got array"))
    }
}

/// The `"Plans"` array of a node.
struct ChildrenSeed<'c, 'de> {
    ctx: &'c mut Ctx<'de>,
    nodes: &'c mut Vec<RawNode<'de>>,
    parent: i32,
}

impl<'de> DeserializeSeed<'de> for ChildrenSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChildrenSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of plan nodes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let seed = NodeSeed {
                ctx: &mut *self.ctx,
                nodes: &mut *self.nodes,
                parent: self.parent,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(())) => i += 1,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.ctx.at_index(i, e)),
            }
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(E::custom(format_args!(
            "expected array, got {}",
            got_string(v)
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("expected array, got number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom("expected array, got number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom("expected array, got number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom("expected array, got boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("expected array, got null"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("expected array, got object"))
    }
}
