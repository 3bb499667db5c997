//! Tests of the TPC-H table generator: cardinalities, determinism, value domains.

use std::collections::{HashMap, HashSet};

use super::*;

fn rows_of(gen: &Generator, table: Table) -> Vec<Vec<String>> {
    let text = String::from_utf8(gen.table(table)).expect("COPY text is UTF-8");
    text.lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn cents(s: &str) -> i64 {
    let (whole, frac) = s.split_once('.').expect("two decimals");
    assert_eq!(frac.len(), 2, "{s}");
    let v =
        whole.trim_start_matches('-').parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
    if s.starts_with('-') {
        -v
    } else {
        v
    }
}

#[test]
fn cardinalities_follow_the_spec() {
    let g = Generator::new(0.01, 1).unwrap();
    let expect = [
        (Table::Region, 5),
        (Table::Nation, 25),
        (Table::Supplier, 100),
        (Table::Customer, 1_500),
        (Table::Part, 2_000),
        (Table::PartSupp, 8_000),
        (Table::Orders, 15_000),
    ];
    for (t, n) in expect {
        assert_eq!(g.rows(t), n, "{}", t.name());
        assert_eq!(rows_of(&g, t).len() as u64, n, "{}", t.name());
    }
    let lines = rows_of(&g, Table::Lineitem);
    assert_eq!(lines.len() as u64, g.rows(Table::Lineitem));
    // 1..7 lines per order, 4 on average.
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    for l in &lines {
        *per_order.entry(l[0].as_str()).or_default() += 1;
    }
    assert_eq!(per_order.len(), 15_000);
    assert!(per_order.values().all(|n| (1..=7).contains(n)));
    let avg = lines.len() as f64 / 15_000.0;
    assert!((3.9..4.1).contains(&avg), "average lines per order {avg}");
    let big = Generator::new(1.0, 1).unwrap().counts;
    assert_eq!(
        (big.supplier, big.customer, big.part, big.orders),
        (10_000, 150_000, 200_000, 1_500_000)
    );
    assert_eq!(Counts::new(0.1).unwrap().customer, 15_000);
    assert!(Generator::new(0.0, 1).is_err());
    assert!(Generator::new(f64::NAN, 1).is_err());
}

#[test]
fn same_seed_same_bytes_any_chunking_other_seed_differs() {
    let a = Generator::new(0.01, 42).unwrap();
    let b = Generator::new(0.01, 42).unwrap();
    let c = Generator::new(0.01, 43).unwrap();
    for t in Table::ALL {
        let whole = a.table(t);
        assert_eq!(whole, b.table(t), "{}", t.name());
        let mut pieces = Vec::new();
        for r in a.chunks(t, 10_000) {
            a.write(t, r, &mut pieces);
        }
        assert_eq!(whole, pieces, "chunking changes {}", t.name());
        if t != Table::Region && t != Table::Nation {
            assert_ne!(whole, c.table(t), "{}", t.name());
        }
    }
}

#[test]
fn keys_and_references() {
    let g = Generator::new(0.01, 7).unwrap();
    let parts = rows_of(&g, Table::Part);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p[0], (i + 1).to_string());
        assert_eq!(cents(&p[7]), retail_cents(i as i64 + 1));
    }
    let ps = rows_of(&g, Table::PartSupp);
    let pairs: HashSet<(i64, i64)> = ps
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(pairs.len(), ps.len(), "partsupp keys are unique");
    assert!(pairs.iter().all(|(_, s)| (1..=100).contains(s)));
    let orders = rows_of(&g, Table::Orders);
    let mut keys = HashMap::new();
    for o in &orders {
        let key: i64 = o[0].parse().unwrap();
        assert!((key - 1) % 32 < 8, "sparse order key {key}");
        let cust: i64 = o[1].parse().unwrap();
        assert!(
            (1..=1500).contains(&cust) && cust % 3 != 0,
            "customer {cust}"
        );
        keys.insert(key, o.clone());
    }
    assert_eq!(keys.len(), 15_000);
    let lines = rows_of(&g, Table::Lineitem);
    let mut totals: HashMap<i64, i64> = HashMap::new();
    let mut status: HashMap<i64, (usize, usize)> = HashMap::new();
    for l in &lines {
        let ok: i64 = l[0].parse().unwrap();
        let pk: i64 = l[1].parse().unwrap();
        let sk: i64 = l[2].parse().unwrap();
        assert!(keys.contains_key(&ok));
        assert!(
            pairs.contains(&(pk, sk)),
            "lineitem ({pk},{sk}) not in partsupp"
        );
        let q: i64 = l[4].parse().unwrap();
        assert_eq!(cents(&l[5]), q * retail_cents(pk));
        let d = cents(&l[6]);
        let t = cents(&l[7]);
        assert!((0..=10).contains(&d) && (0..=8).contains(&t));
        *totals.entry(ok).or_default() += (cents(&l[5]) * (100 - d) * (100 + t) + 5_000) / 10_000;
        let e = status.entry(ok).or_default();
        if l[9] == "F" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        // ship <= receipt, returnflag vs receipt date, linestatus vs ship date
        assert!(l[10] < l[12]);
        assert_eq!(l[9] == "O", l[10].as_str() > "1995-06-17");
        assert_eq!(l[8] == "N", l[12].as_str() > "1995-06-17");
        assert!(INSTRUCTIONS.contains(&l[13].as_str()) && SHIP_MODES.contains(&l[14].as_str()));
        assert!((10..=43).contains(&l[15].len()));
    }
    for (key, o) in &keys {
        assert_eq!(cents(&o[3]), totals[key], "totalprice of order {key}");
        let expect = match status[key] {
            (_, 0) => "F",
            (0, _) => "O",
            _ => "P",
        };
        assert_eq!(o[2], expect);
        assert!(o[4].as_str() >= "1992-01-01" && o[4].as_str() <= "1998-08-02");
        assert!(PRIORITIES.contains(&o[5].as_str()));
        assert!((19..=78).contains(&o[8].len()));
    }
}

#[test]
fn value_domains() {
    let g = Generator::new(0.1, 3).unwrap();
    for p in rows_of(&g, Table::Part) {
        let words: Vec<&str> = p[1].split(' ').collect();
        assert_eq!(words.len(), 5);
        assert!(words.iter().all(|w| COLORS.contains(w)));
        assert_eq!(words.iter().collect::<HashSet<_>>().len(), 5);
        let m = &p[2]["Manufacturer#".len()..];
        assert!(p[3].starts_with(&format!("Brand#{m}")));
        let ty: Vec<&str> = p[4].split(' ').collect();
        assert!(TYPE_S1.contains(&ty[0]) && TYPE_S2.contains(&ty[1]) && TYPE_S3.contains(&ty[2]));
        assert!((1..=50).contains(&p[5].parse::<i64>().unwrap()));
        assert!((5..=22).contains(&p[8].len()));
    }
    let mut complaints = 0;
    let mut recommends = 0;
    for s in rows_of(&g, Table::Supplier) {
        assert_eq!(
            s[1],
            format!("Supplier#{:09}", s[0].parse::<i64>().unwrap())
        );
        assert!((10..=40).contains(&s[2].len()));
        let nation: i64 = s[3].parse().unwrap();
        assert!(s[4].starts_with(&format!("{}-", nation + 10)) && s[4].len() == 15);
        assert!((-99_999..=999_999).contains(&cents(&s[5])));
        assert!((25..=100).contains(&s[6].len()), "{}", s[6]);
        let c = &s[6];
        if let Some(i) = c.find("Customer ") {
            complaints += usize::from(c[i..].contains("Complaints"));
            recommends += usize::from(c[i..].contains("Recommends"));
        }
    }
    // SF * 5 of each at SF 0.1 (a comment can contain such words by chance only rarely).
    assert_eq!(complaints, 1);
    assert_eq!(recommends, 1);
    for c in rows_of(&g, Table::Customer) {
        assert!(SEGMENTS.contains(&c[6].as_str()));
        assert!((29..=116).contains(&c[7].len()));
    }
    for ps in rows_of(&g, Table::PartSupp) {
        assert!((1..=9_999).contains(&ps[2].parse::<i64>().unwrap()));
        assert!((100..=100_000).contains(&cents(&ps[3])));
        assert!((49..=198).contains(&ps[4].len()));
    }
}
