//! Fixed vocabularies of the categorical EXPLAIN fields, taken from PostgreSQL's
//! `src/backend/commands/explain.c` (the non-text `sname` values, releases 13 to 18).
//! Every vocabulary ends with an implicit "other" bucket: values PostgreSQL adds later
//! land there instead of failing.

/// `"Node Type"` values (`sname` in `ExplainNode`).
pub const NODE_TYPES: &[&str] = &[
    "Result",
    "ProjectSet",
    "ModifyTable",
    "Append",
    "Merge Append",
    "Recursive Union",
    "BitmapAnd",
    "BitmapOr",
    "Nested Loop",
    "Merge Join",
    "Hash Join",
    "Seq Scan",
    "Sample Scan",
    "Gather",
    "Gather Merge",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Index Scan",
    "Bitmap Heap Scan",
    "Tid Scan",
    "Tid Range Scan",
    "Subquery Scan",
    "Function Scan",
    "Table Function Scan",
    "Values Scan",
    "CTE Scan",
    "Named Tuplestore Scan",
    "WorkTable Scan",
    "Foreign Scan",
    "Custom Scan",
    "Materialize",
    "Memoize",
    "Sort",
    "Incremental Sort",
    "Group",
    "Aggregate",
    "WindowAgg",
    "Unique",
    "SetOp",
    "LockRows",
    "Limit",
    "Hash",
];

/// `"Parent Relationship"` values (absent on roots).
pub const RELATIONSHIPS: &[&str] = &[
    "Outer", "Inner", "Subquery", "SubPlan", "InitPlan", "Member",
];

/// `"Join Type"` values of Nested Loop / Merge Join / Hash Join.
pub const JOIN_TYPES: &[&str] = &[
    "Inner",
    "Left",
    "Full",
    "Right",
    "Semi",
    "Anti",
    "Right Semi",
    "Right Anti",
];

/// `"Scan Direction"` of index scans.
pub const SCAN_DIRECTIONS: &[&str] = &["Forward", "Backward", "NoMovement"];

/// `"Strategy"` of Aggregate (Plain/Sorted/Hashed/Mixed) and SetOp (Sorted/Hashed).
pub const STRATEGIES: &[&str] = &["Plain", "Sorted", "Hashed", "Mixed"];

/// `"Partial Mode"` of Aggregate.
pub const PARTIAL_MODES: &[&str] = &["Simple", "Partial", "Finalize"];

/// `"Operation"` of ModifyTable and Foreign Scan.
pub const OPERATIONS: &[&str] = &["Select", "Insert", "Update", "Delete", "Merge"];

/// `"Sort Method"` of Sort (ANALYZE only; `tuplesort_method_name`).
pub const SORT_METHODS: &[&str] = &[
    "quicksort",
    "top-N heapsort",
    "external sort",
    "external merge",
    "still in progress",
];

/// Position of `value` in `vocab`, or `vocab.len()` (the "other" bucket).
#[inline]
pub fn lookup(vocab: &[&str], value: &str) -> usize {
    vocab
        .iter()
        .position(|v| *v == value)
        .unwrap_or(vocab.len())
}

/// Node-type id of a `"Node Type"` string: its position in [`NODE_TYPES`], or
/// `NODE_TYPES.len()` for types this build does not know.
#[inline]
pub fn node_type_id(name: &str) -> usize {
    // A match compiles to length-then-bytes comparisons, cheaper than a linear scan.
    match name {
        "Result" => 0,
        "ProjectSet" => 1,
        "ModifyTable" => 2,
        "Append" => 3,
        "Merge Append" => 4,
        "Recursive Union" => 5,
        "BitmapAnd" => 6,
        "BitmapOr" => 7,
        "Nested Loop" => 8,
        "Merge Join" => 9,
        "Hash Join" => 10,
        "Seq Scan" => 11,
        "Sample Scan" => 12,
        "Gather" => 13,
        "Gather Merge" => 14,
        "Index Scan" => 15,
        "Index Only Scan" => 16,
        "Bitmap Index Scan" => 17,
        "Bitmap Heap Scan" => 18,
        "Tid Scan" => 19,
        "Tid Range Scan" => 20,
        "Subquery Scan" => 21,
        "Function Scan" => 22,
        "Table Function Scan" => 23,
        "Values Scan" => 24,
        "CTE Scan" => 25,
        "Named Tuplestore Scan" => 26,
        "WorkTable Scan" => 27,
        "Foreign Scan" => 28,
        "Custom Scan" => 29,
        "Materialize" => 30,
        "Memoize" => 31,
        "Sort" => 32,
        "Incremental Sort" => 33,
        "Group" => 34,
        "Aggregate" => 35,
        "WindowAgg" => 36,
        "Unique" => 37,
        "SetOp" => 38,
        "LockRows" => 39,
        "Limit" => 40,
        "Hash" => 41,
        _ => NODE_TYPES.len(),
    }
}

/// Name of the "other" bucket in every vocabulary.
pub const OTHER: &str = "<other>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_type_match_agrees_with_table() {
        for (i, name) in NODE_TYPES.iter().enumerate() {
            assert_eq!(node_type_id(name), i, "{name}");
        }
        assert_eq!(node_type_id("Some Future Node"), NODE_TYPES.len());
    }

    #[test]
    fn lookup_falls_back_to_other() {
        assert_eq!(lookup(JOIN_TYPES, "Semi"), 4);
        assert_eq!(lookup(JOIN_TYPES, "Sideways"), JOIN_TYPES.len());
    }
}
