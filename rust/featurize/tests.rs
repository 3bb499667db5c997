//! Unit tests of parsing, encoding and error reporting on hand-written EXPLAIN JSON in
//! the shapes PostgreSQL 13-17 print (real-server plans are tested from Python).

use super::*;

fn catalog() -> PlanCatalog {
    PlanCatalog::new(
        vec!["orders".into(), "lineitem".into(), "customer".into()],
        vec!["orders_pkey".into(), "lineitem_pkey".into()],
        vec!["orders.o_orderkey".into()],
    )
    .unwrap()
}

/// A hash join with an InitPlan, ANALYZE output and PG 17 top-level keys.
const ANALYZED: &str = r#"[
  {
    "Plan": {
      "Node Type": "Hash Join", "Parallel Aware": false, "Async Capable": false,
      "Join Type": "Inner", "Startup Cost": 10.5, "Total Cost": 250.75,
      "Plan Rows": 1000, "Plan Width": 16,
      "Actual Startup Time": 0.5, "Actual Total Time": 3.25, "Actual Rows": 990, "Actual Loops": 1,
      "Output": ["o.o_orderkey", "l.l_quantity"], "Inner Unique": true,
      "Hash Cond": "(l.l_orderkey = o.o_orderkey)",
      "Shared Hit Blocks": 12, "Shared Read Blocks": 0,
      "Plans": [
        {
          "Node Type": "Result", "Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1 (returns $0)",
          "Parallel Aware": false, "Startup Cost": 0.0, "Total Cost": 0.01,
          "Plan Rows": 1, "Plan Width": 4,
          "Actual Startup Time": 0.001, "Actual Total Time": 0.001, "Actual Rows": 1, "Actual Loops": 1
        },
        {
          "Node Type": "Seq Scan", "Parent Relationship": "Outer", "Parallel Aware": false,
          "Relation Name": "lineitem", "Schema": "public", "Alias": "l",
          "Startup Cost": 0.0, "Total Cost": 150.0, "Plan Rows": 6000, "Plan Width": 8,
          "Actual Startup Time": 0.01, "Actual Total Time": 1.5, "Actual Rows": 6000, "Actual Loops": 1,
          "Filter": "(l_quantity > $0)", "Rows Removed by Filter": 0
        },
        {
          "Node Type": "Hash", "Parent Relationship": "Inner", "Parallel Aware": false,
          "Startup Cost": 8.0, "Total Cost": 8.0, "Plan Rows": 200, "Plan Width": 8,
          "Actual Startup Time": 0.4, "Actual Total Time": 0.4, "Actual Rows": 200, "Actual Loops": 1,
          "Hash Buckets": 1024, "Original Hash Buckets": 1024, "Hash Batches": 1,
          "Original Hash Batches": 1, "Peak Memory Usage": 17,
          "Plans": [
            {
              "Node Type": "Index Scan", "Parent Relationship": "Outer", "Parallel Aware": false,
              "Scan Direction": "Forward", "Index Name": "orders_pkey", "Relation Name": "orders",
              "Alias": "o", "Startup Cost": 0.29, "Total Cost": 8.0, "Plan Rows": 200, "Plan Width": 8,
              "Actual Startup Time": 0.02, "Actual Total Time": 0.3, "Actual Rows": 200, "Actual Loops": 1,
              "Index Cond": "(o_orderkey < 200)"
            }
          ]
        }
      ]
    },
    "Planning": {"Shared Hit Blocks": 3},
    "Planning Time": 0.25,
    "Triggers": [],
    "Serialization": {"Time": 0.01, "Output Volume": 12, "Format": "text"},
    "Memory": {"Used": 20, "Allocated": 32},
    "Execution Time": 3.5
  }
]"#;

/// EXPLAIN without ANALYZE: an aggregate over a sort over a gather (a parallel plan).
const PLAIN: &str = r#"[{"Plan": {"Node Type": "Aggregate", "Strategy": "Sorted", "Partial Mode": "Finalize",
 "Parallel Aware": false, "Startup Cost": 1.0, "Total Cost": 99.0, "Plan Rows": 5, "Plan Width": 40,
 "Group Key": ["x"], "Plans": [
  {"Node Type": "Gather Merge", "Parent Relationship": "Outer", "Parallel Aware": false,
   "Startup Cost": 1.0, "Total Cost": 90.0, "Plan Rows": 10, "Plan Width": 40, "Workers Planned": 2,
   "Plans": [
    {"Node Type": "Sort", "Parent Relationship": "Outer", "Parallel Aware": false,
     "Startup Cost": 1.0, "Total Cost": 80.0, "Plan Rows": 5, "Plan Width": 40, "Sort Key": ["x"],
     "Plans": [
      {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Parallel Aware": true,
       "Relation Name": "nation", "Alias": "nation", "Startup Cost": 0.0, "Total Cost": 70.0,
       "Plan Rows": 100, "Plan Width": 40}]}]}]},
 "Settings": {"enable_hashjoin": "off"}}]"#;

#[test]
fn parses_nodes_in_preorder_with_parents() {
    let p = parse_plan(ANALYZED.as_bytes()).unwrap();
    let types: Vec<&str> = p.nodes.iter().map(|n| n.node_type.as_ref()).collect();
    assert_eq!(
        types,
        ["Hash Join", "Result", "Seq Scan", "Hash", "Index Scan"]
    );
    let parents: Vec<i32> = p.nodes.iter().map(|n| n.parent).collect();
    assert_eq!(parents, [-1, 0, 0, 0, 3]);
    assert_eq!(p.planning_time, Some(0.25));
    assert_eq!(p.execution_time, Some(3.5));
    assert_eq!(p.nodes[4].index.as_deref(), Some("orders_pkey"));
    assert_eq!(p.nodes[3].hash_buckets, Some(1024.0));
    assert_eq!(p.nodes[0].actual_rows, Some(990.0));
}

#[test]
fn qppnet_columns_line_up_with_names() {
    let cat = catalog();
    let b = featurize(&[ANALYZED, PLAIN], &cat, Encoding::Qppnet).unwrap();
    let layout = Layout::new(Encoding::Qppnet, &cat);
    let col = |name: &str| layout.names.iter().position(|n| n == name).unwrap();
    let w = b.width;
    assert_eq!(w, layout.names.len());
    assert_eq!(b.n_nodes(), 9);
    assert_eq!(b.offsets, [0, 5, 9]);
    let row = |i: usize| &b.features[i * w..(i + 1) * w];
    // est_rows = ln(1 + Plan Rows) for every node
    let plan_rows: [f64; 9] = [1000.0, 1.0, 6000.0, 200.0, 200.0, 5.0, 10.0, 5.0, 100.0];
    for (i, r) in plan_rows.iter().enumerate() {
        assert_eq!(row(i)[col("est_rows")], r.ln_1p() as f32, "node {i}");
    }
    assert_eq!(row(0)[col("type=Hash Join")], 1.0);
    assert_eq!(row(0)[col("join_type=Inner")], 1.0);
    assert_eq!(row(1)[col("relationship=InitPlan")], 1.0);
    assert_eq!(row(2)[col("relation=lineitem")], 1.0);
    assert_eq!(row(3)[col("hash_buckets")], 1024f64.ln_1p() as f32);
    assert_eq!(row(4)[col("index=orders_pkey")], 1.0);
    assert_eq!(row(4)[col("scan_direction=Forward")], 1.0);
    assert_eq!(row(5)[col("strategy=Sorted")], 1.0);
    assert_eq!(row(5)[col("partial_mode=Finalize")], 1.0);
    assert_eq!(row(6)[col("workers_planned")], 2f64.ln_1p() as f32);
    // nation is not in the catalog: the <other> column
    assert_eq!(row(8)[col("relation=<other>")], 1.0);
    assert_eq!(row(8)[col("parallel_aware")], 1.0);
    // exactly one type one-hot per row
    for i in 0..b.n_nodes() {
        let ones: f32 = row(i)[..vocab::NODE_TYPES.len() + 1].iter().sum();
        assert_eq!(ones, 1.0);
    }
    assert_eq!(b.parent, [-1, 0, 0, 0, 3, -1, 5, 6, 7]);
    // -1 root; Outer 0, Inner 1, InitPlan 4 (RELATIONSHIPS order)
    assert_eq!(b.relationship, [-1, 4, 0, 1, 0, -1, 0, 0, 0]);
    // targets: first plan analyzed, second not
    assert_eq!(b.targets.len(), 9 * 4);
    assert_eq!(&b.targets[0..4], &[0.5, 3.25, 990.0, 1.0]);
    assert!(b.targets[5 * 4..].iter().all(|t| t.is_nan()));
    assert_eq!(b.planning_time[0], 0.25);
    assert!(b.execution_time[1].is_nan());
}

#[test]
fn qppnet_type_mask_covers_set_columns() {
    let cat = catalog();
    let b = featurize(&[ANALYZED, PLAIN], &cat, Encoding::Qppnet).unwrap();
    let layout = Layout::new(Encoding::Qppnet, &cat);
    let mask = layout.type_mask();
    let w = b.width;
    for i in 0..b.n_nodes() {
        let t = b.node_type[i] as usize;
        for c in 0..w {
            if b.features[i * w + c] != 0.0 {
                assert!(
                    mask[t * w + c],
                    "node {i} column {} not in its type mask",
                    layout.names[c]
                );
            }
        }
    }
}

#[test]
fn tcnn_binarizes_children() {
    let cat = catalog();
    let b = featurize(&[PLAIN, ANALYZED], &cat, Encoding::Tcnn).unwrap();
    assert_eq!(b.width, vocab::NODE_TYPES.len() + 1 + 2);
    // plan 0: 4-node chain (rows 0..4): unary nodes have right = 0
    assert_eq!(&b.left[..4], &[2, 3, 4, 0]);
    assert_eq!(&b.right[..4], &[0, 0, 0, 0]);
    // plan 1 (rows 4..9): Hash Join's Outer (row 6) left, Inner Hash (row 7) right; the
    // InitPlan (row 5) stays unlinked; Hash -> Index Scan (row 8).
    assert_eq!(&b.left[4..], &[6 + 1, 0, 0, 8 + 1, 0]);
    assert_eq!(&b.right[4..], &[7 + 1, 0, 0, 0, 0]);
}

#[test]
fn unknown_node_types_go_to_other() {
    let text = r#"[{"Plan": {"Node Type": "Quantum Scan", "Startup Cost": 0, "Total Cost": 1,
        "Plan Rows": 1, "Plan Width": 1, "Parent Relationship": "Sideways", "Join Type": "Diagonal"}}]"#;
    let b = featurize(&[text], &catalog(), Encoding::Qppnet).unwrap();
    assert_eq!(b.node_type, [vocab::NODE_TYPES.len() as i32]);
    let layout = Layout::new(Encoding::Qppnet, &catalog());
    let col = |name: &str| layout.names.iter().position(|n| n == name).unwrap();
    assert_eq!(b.features[col("type=<other>")], 1.0);
    assert_eq!(b.features[col("relationship=<other>")], 1.0);
    assert_eq!(b.features[col("join_type=<other>")], 1.0);
}

#[test]
fn accepts_auto_explain_object_and_multiple_statements() {
    let obj = r#"{"Query Text": "select 1", "Plan": {"Node Type": "Result", "Startup Cost": 0.0,
        "Total Cost": 0.01, "Plan Rows": 1, "Plan Width": 4}}"#;
    let p = parse_plan(obj.as_bytes()).unwrap();
    assert_eq!(p.nodes.len(), 1);
    let two = format!("[{obj}, {obj}]");
    let b = featurize(&[two.as_str()], &catalog(), Encoding::Tcnn).unwrap();
    assert_eq!(b.parent, [-1, -1]);
    assert_eq!(b.offsets, [0, 2]);
}

#[test]
fn escaped_strings_are_owned_not_lost() {
    let text = r#"[{"Plan": {"Node Type": "Seq\u0020Scan", "Relation Name": "line\"item",
        "Startup Cost": 0, "Total Cost": 1, "Plan Rows": 1, "Plan Width": 1}}]"#;
    let p = parse_plan(text.as_bytes()).unwrap();
    assert_eq!(p.nodes[0].node_type, "Seq Scan");
    assert_eq!(p.nodes[0].relation.as_deref(), Some("line\"item"));
}

fn err_of(text: &str) -> PlanFormatError {
    featurize(&[PLAIN, text], &catalog(), Encoding::Qppnet).unwrap_err()
}

#[test]
fn wrong_type_names_plan_and_path() {
    let bad = PLAIN.replace(r#""Total Cost": 80.0"#, r#""Total Cost": "80""#);
    let e = err_of(&bad);
    assert_eq!(e.plan, 1);
    assert_eq!(e.path, r#"$[0].Plan.Plans[0].Plans[0]["Total Cost"]"#);
    assert!(
        e.message.starts_with("expected number, got string \"80\""),
        "{e}"
    );
    assert!(e
        .to_string()
        .starts_with(r#"plan 1: $[0].Plan.Plans[0].Plans[0]["Total Cost"]: expected number"#));
}

#[test]
fn missing_keys_name_the_node() {
    let bad = PLAIN.replace(
        r#""Plan Rows": 100, "Plan Width": 40}"#,
        r#""Plan Rows": 100}"#,
    );
    assert_ne!(bad, PLAIN);
    let e = err_of(&bad);
    assert_eq!(e.path, "$[0].Plan.Plans[0].Plans[0].Plans[0]");
    assert!(e.message.starts_with("missing key \"Plan Width\""), "{e}");
    let e = err_of(r#"[{"Planning Time": 1.0}]"#);
    assert_eq!(e.path, "$[0]");
    assert!(e.message.starts_with("missing key \"Plan\""), "{e}");
    let e = err_of(
        r#"[{"Plan": {"Startup Cost": 0, "Total Cost": 1, "Plan Rows": 1, "Plan Width": 1}}]"#,
    );
    assert_eq!(e.path, "$[0].Plan");
    assert!(e.message.starts_with("missing key \"Node Type\""), "{e}");
}

#[test]
fn costs_off_is_reported() {
    let e = err_of(r#"[{"Plan": {"Node Type": "Result", "Parallel Aware": false}}]"#);
    assert!(e.message.contains("COSTS OFF"), "{e}");
}

#[test]
fn malformed_json_reports_position_and_path() {
    let truncated = &PLAIN[..PLAIN.len() / 2];
    let e = err_of(truncated);
    assert_eq!(e.plan, 1);
    assert!(e.path.starts_with("$[0].Plan"), "{e}");
    assert!(e.message.contains("EOF"), "{e}");
    let e = err_of(r#"[{"Plan": {"Node Type": "Result" "Startup Cost": 0}}]"#);
    assert_eq!(e.path, "$[0].Plan");
    assert!(e.message.contains("line 1 column"), "{e}");
    let e = err_of(&format!("{PLAIN} trailing"));
    assert_eq!(e.path, "$");
    assert!(e.message.contains("trailing characters"), "{e}");
    let e = err_of("");
    assert_eq!(e.path, "$");
    let e = err_of("[]");
    assert!(e.message.contains("empty array"), "{e}");
    let e = err_of("\"text\"");
    assert!(e.message.contains("got string"), "{e}");
}

#[test]
fn wrong_container_types() {
    let e = err_of(r#"[{"Plan": {"Node Type": "Result", "Plans": {}, "Startup Cost": 0}}]"#);
    assert_eq!(e.path, "$[0].Plan.Plans");
    assert!(e.message.starts_with("expected array, got object"), "{e}");
    let e = err_of(r#"[{"Plan": {"Node Type": "Result", "Plans": [1]}}]"#);
    assert_eq!(e.path, "$[0].Plan.Plans[0]");
    assert!(
        e.message
            .starts_with("expected plan node object, got number"),
        "{e}"
    );
    let e = err_of(r#"[{"Plan": {"Node Type": null}}]"#);
    assert_eq!(e.path, r#"$[0].Plan["Node Type"]"#);
    assert!(e.message.starts_with("expected string, got null"), "{e}");
    let e = err_of(r#"[{"Plan": {"Node Type": "Result", "Parallel Aware": "no"}}]"#);
    assert!(e.message.starts_with("expected boolean, got string"), "{e}");
    let e = err_of(r#"[3]"#);
    assert_eq!(e.path, "$[0]");
    assert!(e.message.starts_with("expected object, got number"), "{e}");
}

#[test]
fn errors_inside_skipped_values_have_paths() {
    let e = err_of(r#"[{"Plan": {"Node Type": "Result", "Output": ["a", 1.2.3]}}]"#);
    assert_eq!(e.path, "$[0].Plan.Output");
}

#[test]
fn invalid_utf8_is_an_error_not_a_panic() {
    let mut bytes = PLAIN.as_bytes().to_vec();
    let at = PLAIN.find("nation").unwrap();
    bytes[at] = 0xff;
    let plans: Vec<&[u8]> = vec![PLAIN.as_bytes(), &bytes];
    let e = featurize(&plans, &catalog(), Encoding::Tcnn).unwrap_err();
    assert_eq!(e.plan, 1);
    assert_eq!(
        e.path,
        r#"$[0].Plan.Plans[0].Plans[0].Plans[0]["Relation Name"]"#
    );
    assert!(e.message.contains("invalid unicode"), "{e}");
}

fn nested(depth: usize) -> String {
    let node = |inner: &str| {
        format!(
            r#"{{"Node Type": "Limit", "Startup Cost": 0, "Total Cost": 1, "Plan Rows": 1, "Plan Width": 1{inner}}}"#
        )
    };
    let mut s = node("");
    for _ in 1..depth {
        s = node(&format!(r#", "Plans": [{s}]"#));
    }
    format!(r#"[{{"Plan": {s}}}]"#)
}

#[test]
fn long_paths_are_shortened_in_messages() {
    use crate::featurize::short_path;
    assert_eq!(short_path("$"), "$");
    assert_eq!(
        short_path("$[0].Plan.Plans[1][\"Total Cost\"]"),
        "$[0].Plan.Plans[1][\"Total Cost\"]"
    );
    assert_eq!(
        short_path("$[0].Plan.Plans[0].Plans[0].Plans[0]"),
        "$[0].Plan.Plans[0].Plans[0].Plans[0]"
    );
    assert_eq!(
        short_path("$[0].Plan.Plans[0].Plans[0].Plans[0].Plans[0].Plans[1][\"a.b[0]\"]"),
        "$[0].Plan.Plans[0].Plans[0]...(x2)....Plans[1][\"a.b[0]\"]"
    );
}

#[test]
fn deep_plans_parse_up_to_the_limit_and_fail_cleanly_beyond() {
    // Run on a thread with the 2 MiB stack rayon's workers have.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let ok = nested(MAX_PLAN_DEPTH);
            assert_eq!(
                parse_plan(ok.as_bytes()).unwrap().nodes.len(),
                MAX_PLAN_DEPTH
            );
            let too_deep = nested(MAX_PLAN_DEPTH + 1);
            let e = parse_plan(too_deep.as_bytes()).unwrap_err();
            assert!(e.message.contains("nested deeper"), "{e}");
            assert!(e.too_deep, "{e}");
            assert_eq!(
                e.path,
                format!("$[0].Plan{}", ".Plans[0]".repeat(MAX_PLAN_DEPTH))
            );
            let texts = [ok.as_bytes(), too_deep.as_bytes()];
            let e = crate::featurize::parse_batch(&texts).err().unwrap();
            assert_eq!(
                e.to_string(),
                "plan 1 nests deeper than 400 levels at $[0].Plan.Plans[0].Plans[0]...(x398)..."
            );
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn large_batches_are_deterministic_and_match_small_ones() {
    let many: Vec<&str> = (0..500)
        .map(|i| if i % 3 == 0 { PLAIN } else { ANALYZED })
        .collect();
    let cat = catalog();
    let a = featurize(&many, &cat, Encoding::Qppnet).unwrap();
    let b = featurize(&many, &cat, Encoding::Qppnet).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(a.features == b.features && a.parent == b.parent && a.node_type == b.node_type);
    assert!(bits(&a.targets) == bits(&b.targets) && a.offsets == b.offsets);
    assert_eq!(a.n_plans(), 500);
    let one = featurize(&many[..2], &cat, Encoding::Qppnet).unwrap();
    let w = a.width;
    assert!(a.features[..9 * w] == one.features[..]);
    assert_eq!(parse_only(&many).unwrap(), a.n_nodes());
    // the first failing plan is reported, whichever thread saw it first
    let mut bad = many.clone();
    bad[321] = "[";
    bad[77] = "{";
    assert_eq!(featurize(&bad, &cat, Encoding::Tcnn).unwrap_err().plan, 77);
}

/// PG 13-16 ANALYZE VERBOSE output of a parallel plan: per-worker arrays inside nodes,
/// a JIT block, trigger entries; none of it changes the nodes read.
const PARALLEL_JIT_TRIGGERS: &str = r#"[
  {
    "Plan": {
      "Node Type": "ModifyTable", "Operation": "Insert", "Parallel Aware": false,
      "Relation Name": "orders", "Schema": "public", "Alias": "orders",
      "Startup Cost": 1000.0, "Total Cost": 2000.5, "Plan Rows": 10, "Plan Width": 8,
      "Actual Startup Time": 5.0, "Actual Total Time": 6.0, "Actual Rows": 0, "Actual Loops": 1,
      "Plans": [
        {
          "Node Type": "Gather", "Parent Relationship": "Outer", "Parallel Aware": false,
          "Startup Cost": 1000.0, "Total Cost": 1990.0, "Plan Rows": 10, "Plan Width": 8,
          "Actual Startup Time": 1.0, "Actual Total Time": 4.0, "Actual Rows": 10, "Actual Loops": 1,
          "Output": ["x"], "Workers Planned": 2, "Workers Launched": 2, "Single Copy": false,
          "Plans": [
            {
              "Node Type": "Seq Scan", "Parent Relationship": "Outer", "Parallel Aware": true,
              "Relation Name": "lineitem", "Schema": "public", "Alias": "lineitem",
              "Startup Cost": 0.0, "Total Cost": 900.0, "Plan Rows": 4, "Plan Width": 8,
              "Actual Startup Time": 0.1, "Actual Total Time": 3.0, "Actual Rows": 3, "Actual Loops": 3,
              "Output": ["x"], "Filter": "(x > 1)", "Rows Removed by Filter": 20,
              "Workers": [
                {"Worker Number": 0, "Actual Startup Time": 0.2, "Actual Total Time": 2.9,
                 "Actual Rows": 4, "Actual Loops": 1,
                 "JIT": {"Functions": 2, "Options": {"Inlining": false}}},
                {"Worker Number": 1, "Actual Startup Time": 0.3, "Actual Total Time": 2.8,
                 "Actual Rows": 3, "Actual Loops": 1}
              ]
            }
          ]
        }
      ]
    },
    "Planning Time": 0.5,
    "Triggers": [
      {"Trigger Name": "RI_ConstraintTrigger_c_1", "Constraint Name": "fk", "Relation": "orders",
       "Time": 0.4, "Calls": 10}
    ],
    "JIT": {"Functions": 4, "Options": {"Inlining": false, "Optimization": false,
            "Expressions": true, "Deforming": true},
            "Timing": {"Generation": 0.5, "Inlining": 0.0, "Optimization": 0.3,
                       "Emission": 4.0, "Total": 4.8}},
    "Execution Time": 12.25
  }
]"#;

#[test]
fn worker_arrays_jit_and_triggers_are_skipped() {
    let p = parse_plan(PARALLEL_JIT_TRIGGERS.as_bytes()).unwrap();
    let types: Vec<&str> = p.nodes.iter().map(|n| n.node_type.as_ref()).collect();
    assert_eq!(types, ["ModifyTable", "Gather", "Seq Scan"]);
    // the node's own actuals, not a worker's
    assert_eq!(p.nodes[2].actual_rows, Some(3.0));
    assert_eq!(p.nodes[2].actual_loops, Some(3.0));
    assert_eq!(p.nodes[1].workers_planned, Some(2.0));
    assert_eq!(p.nodes[0].operation.as_deref(), Some("Insert"));
    assert_eq!(p.execution_time, Some(12.25));
    let b = featurize(&[PARALLEL_JIT_TRIGGERS], &catalog(), Encoding::Qppnet).unwrap();
    let layout = Layout::new(Encoding::Qppnet, &catalog());
    let col = |name: &str| layout.names.iter().position(|n| n == name).unwrap();
    assert_eq!(b.features[col("operation=Insert")], 1.0);
    assert_eq!(b.features[col("relation=orders")], 1.0);
    assert_eq!(b.relationship, [-1, 0, 0]);
}
