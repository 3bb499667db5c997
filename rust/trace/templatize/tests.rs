//! Tests of the templatizer (rust/trace/templatize.rs).

use super::templatize;

fn t(sql: &str) -> String {
    templatize(sql).0
}

#[test]
fn same_structure_other_constants() {
    assert_eq!(
        t("SELECT * FROM t1 WHERE a = 1"),
        t("select *  from T1 where a=42")
    );
    assert_eq!(
        t("select * from t1 where a = 1"),
        "select * from t1 where a = $1"
    );
    assert_eq!(t("select 'x''y'"), t("select E'it\\'s'"));
    assert_eq!(t("select 'x'"), "select $1");
    assert_eq!(
        t("select 1.5e-3, .5, 1., 0x1F, 1_000"),
        "select $1, $2, $3, $4, $5"
    );
    assert_eq!(t("select $$a ' b$$, $tag$x$$y$tag$"), "select $1, $2");
}

#[test]
fn parameters_and_literals_agree() {
    assert_eq!(
        t("select * from t where a = $1 and b = $2"),
        t("select * from t where a = -5 and b = 'it''s'")
    );
    assert_eq!(
        t("update t set x = x + $1 where id = $2"),
        "update t set x = x + $1 where id = $2"
    );
    assert_eq!(
        t("update t set x = x + -77 where id = 3"),
        "update t set x = x + $1 where id = $2"
    );
}

#[test]
fn negative_numbers_vs_binary_minus() {
    assert_eq!(t("select a-1 from t"), "select a - $1 from t");
    assert_eq!(t("select a - 1 from t"), "select a - $1 from t");
    assert_eq!(t("select a -1 from t"), "select a - $1 from t");
    assert_eq!(t("select (a)-1"), "select (a) - $1");
    assert_eq!(t("select x where a = -1"), "select x where a = $1");
    assert_eq!(t("select x where a=-1"), "select x where a = $1");
    assert_eq!(t("select -1"), "select $1");
    assert_eq!(t("values (-1, - 2)"), "values ($1, $2)");
    assert_eq!(t("select 3 - -1"), "select $1 - $2");
    assert_eq!(t("select 2-1"), "select $1 - $2");
    assert_eq!(t("select t1.a-t2.b"), "select t1.a - t2.b");
}

#[test]
fn null_and_booleans_are_values_except_in_is_tests() {
    assert_eq!(t("SELECT  -9, 2.5, NULL, true"), t("select $1, $2, $3, $4"));
    assert_eq!(
        t("update t set a = null where b is null and c is not true"),
        "update t set a = $1 where b is null and c is not true"
    );
    assert_eq!(t("select this, null"), "select this, $1");
}

#[test]
fn identifiers_are_not_constants() {
    let (tpl, consts) = templatize("select t1.c2, \"Col 3\", a$b from t1 join t_2 on t1.x = t_2.y");
    assert_eq!(
        tpl,
        "select t1.c2, \"Col 3\", a$b from t1 join t_2 on t1.x = t_2.y"
    );
    assert!(consts.is_empty());
}

#[test]
fn different_structure_different_template() {
    assert_ne!(
        t("select a from t where x = 1"),
        t("select b from t where x = 1")
    );
    assert_ne!(
        t("select a from t where x = 1"),
        t("select a from t where x > 1")
    );
    assert_ne!(
        t("select a from t where x in (1, 2)"),
        t("select a from t where x in (1, y)")
    );
    assert_ne!(t("select \"A\" from t"), t("select \"a\" from t"));
}

#[test]
fn whitespace_comments_and_case() {
    assert_eq!(
        t("SELECT count( * )\n\tFROM   t -- trailing\n WHERE /* c /* nested */ */ x = 1;"),
        t("select count(*) from t where x=2 ;")
    );
    assert_eq!(t("BEGIN;"), "begin");
    assert_eq!(t("select 1; select 2;"), "select $1; select $2");
    assert_eq!(
        t("select count(*) from t where x = 1"),
        t("select count(*) from t where x=2 ;")
    );
    assert_eq!(t("select count(*) from t"), "select count(*) from t");
    assert_eq!(
        t("select x::int, a[1] from t"),
        "select x::int, a[$1] from t"
    );
    assert_eq!(
        t("select * from t where x in (1,2)"),
        "select * from t where x in ($1 /*, ... */)"
    );
}

#[test]
fn constant_lists_are_squashed() {
    let squashed = "select a from t where x in ($1 /*, ... */) and y = $2";
    for sql in [
        "select a from t where x in (1, 2) and y = 3",
        "select a from t where x in (1, 2, 3, -4) and y = 3",
        "SELECT a FROM t WHERE x IN (7) AND y = 'z'",
        "select a from t where x in ('a', E'b', null, 1.5e3) and y = $3",
        "select a from t where x in ($1, $2, $3) and y = $4",
    ] {
        assert_eq!(t(sql), squashed, "{sql}");
    }
    assert_eq!(
        t("select a from t where x not in (1, 2) or z in (3)"),
        "select a from t where x not in ($1 /*, ... */) or z in ($2 /*, ... */)"
    );
    assert_eq!(
        t("select a from t where x = any(array[1, 2, 3])"),
        "select a from t where x = any (array[$1 /*, ... */])"
    );
    assert_eq!(
        t("select array[1] || array[2, 3]"),
        t("select array[4, 5] || array[6]")
    );
    // Not lists of constants only: kept as they are.
    for (sql, tmpl) in [
        (
            "select a from t where x in (1, y)",
            "select a from t where x in ($1, y)",
        ),
        (
            "select a from t where x in ('a'::text)",
            "select a from t where x in ($1::text)",
        ),
        (
            "select a from t where x in (select 1)",
            "select a from t where x in (select $1)",
        ),
        (
            "select a from t where (x, y) in ((1, 2), (3, 4))",
            "select a from t where (x, y) in (($1, $2), ($3, $4))",
        ),
        ("select min(1, 2), a[1, 2]", "select min($1, $2), a[$3, $4]"),
        (
            "insert into t values (1, 2), (3, 4)",
            "insert into t values ($1, $2), ($3, $4)",
        ),
        ("select f(in (1, 2)", "select f(in ($1 /*, ... */)"),
    ] {
        assert_eq!(t(sql), tmpl, "{sql}");
    }
    // Squashing is idempotent: a template templatizes to itself.
    assert_eq!(t(squashed), squashed);
}

#[test]
fn squashed_lists_report_every_constant() {
    let (text, consts) = templatize("select a from t where x in (1, 2, 3) and y = 'q'");
    assert_eq!(
        text,
        "select a from t where x in ($1 /*, ... */) and y = $2"
    );
    assert_eq!(consts, ["1", "2", "3", "'q'"]);
}

#[test]
fn constants_are_reported_with_their_text() {
    let (_, c) = templatize("select 'a''b', -3, E'x\\'', $1 from t where y = 2.5");
    assert_eq!(c, vec!["'a''b'", "-3", "E'x\\''", "$1", "2.5"]);
}

#[test]
fn unterminated_and_odd_input_does_not_panic() {
    for s in [
        "'abc",
        "$$abc",
        "$tag$ab",
        "\"abc",
        "/* abc",
        "E'\\",
        "- -",
        "$",
        "U&",
        "0x",
        "1e",
        "\u{e9}t\u{e9}",
    ] {
        let _ = templatize(s);
    }
}
