//! Orders and their lineitems: an order row needs its lines' prices, so both draw from the
//! same per-order generator (the order's own, then one per line).

use crate::benchmarks::rng::Rng;
use crate::benchmarks::tpch::dists::*;
use crate::benchmarks::tpch::fmt;

use super::{
    order_key, partsupp_suppkey, retail_cents, Generator, Table, CURRENT_DATE, END_DATE, LINE_TAG,
    START_DATE,
};

/// The numeric part of a lineitem that the order row depends on.
pub(super) struct LineCore {
    rng: Rng,
    partkey: i64,
    supp_i: i64,
    quantity: i64,
    discount: i64,
    tax: i64,
    ship: i64,
}

impl Generator {
    /// The order's generator after its customer and date draws, with the date and line count.
    #[inline]
    pub(super) fn order_head(&self, i: u64) -> (Rng, i64, i64, usize) {
        let mut rng = Rng::for_row(self.seed, Table::Orders.tag(), i);
        // Customer keys divisible by 3 get no orders: pick among the others.
        let c = self.counts.customer;
        let valid = c - c / 3;
        let j = rng.range(0, valid as i64 - 1);
        let custkey = (j / 2) * 3 + j % 2 + 1;
        let date = START_DATE + rng.range(0, END_DATE - 151 - START_DATE);
        let lines = rng.range(1, 7) as usize;
        (rng, custkey, date, lines)
    }

    pub(super) fn order_lines(&self, i: u64) -> usize {
        self.order_head(i).3
    }

    #[inline]
    pub(super) fn line_core(&self, i: u64, j: usize) -> LineCore {
        let mut rng = Rng::for_row(self.seed, LINE_TAG, i * 8 + j as u64);
        let partkey = rng.range(1, self.counts.part as i64);
        let supp_i = rng.range(0, 3);
        let quantity = rng.range(1, 50);
        let discount = rng.range(0, 10);
        let tax = rng.range(0, 8);
        let ship = rng.range(1, 121);
        LineCore {
            rng,
            partkey,
            supp_i,
            quantity,
            discount,
            tax,
            ship,
        }
    }

    pub(super) fn order(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let (mut rng, custkey, date, lines) = self.order_head(i);
        let mut total: i64 = 0;
        let (mut shipped, mut open) = (0, 0);
        for j in 0..lines {
            let l = self.line_core(i, j);
            let ext = l.quantity * retail_cents(l.partkey);
            // extendedprice * (1 - discount) * (1 + tax), rounded to cents per line.
            total += (ext * (100 - l.discount) * (100 + l.tax) + 5_000) / 10_000;
            if date + l.ship > CURRENT_DATE {
                open += 1;
            } else {
                shipped += 1;
            }
        }
        fmt::int(out, order_key(i));
        out.push(b'\t');
        fmt::int(out, custkey);
        out.push(b'\t');
        out.push(match (shipped, open) {
            (_, 0) => b'F',
            (0, _) => b'O',
            _ => b'P',
        });
        out.push(b'\t');
        fmt::cents(out, total);
        out.push(b'\t');
        self.date(date, out);
        out.push(b'\t');
        out.extend_from_slice(rng.pick(&PRIORITIES).as_bytes());
        out.extend_from_slice(b"\tClerk#");
        fmt::padded(out, rng.range(1, self.counts.clerks as i64) as u64, 9);
        out.extend_from_slice(b"\t0\t");
        self.comment(&mut rng, 19, 78, out);
        1
    }

    pub(super) fn lineitems(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let (_, _, date, lines) = self.order_head(i);
        let key = order_key(i);
        let suppliers = self.counts.supplier as i64;
        for j in 0..lines {
            let LineCore {
                mut rng,
                partkey,
                supp_i,
                quantity,
                discount,
                tax,
                ship,
            } = self.line_core(i, j);
            let ship = date + ship;
            let commit = date + rng.range(30, 90);
            let receipt = ship + rng.range(1, 30);
            let coin = rng.range(0, 1);
            fmt::int(out, key);
            out.push(b'\t');
            fmt::int(out, partkey);
            out.push(b'\t');
            fmt::int(out, partsupp_suppkey(partkey, supp_i, suppliers));
            out.push(b'\t');
            fmt::int(out, j as i64 + 1);
            out.push(b'\t');
            fmt::int(out, quantity);
            out.push(b'\t');
            fmt::cents(out, quantity * retail_cents(partkey));
            out.extend_from_slice(b"\t0.");
            fmt::padded(out, discount as u64, 2);
            out.extend_from_slice(b"\t0.0");
            fmt::int(out, tax);
            out.push(b'\t');
            out.push(if receipt <= CURRENT_DATE {
                if coin == 0 {
                    b'R'
                } else {
                    b'A'
                }
            } else {
                b'N'
            });
            out.push(b'\t');
            out.push(if ship > CURRENT_DATE { b'O' } else { b'F' });
            out.push(b'\t');
            self.date(ship, out);
            out.push(b'\t');
            self.date(commit, out);
            out.push(b'\t');
            self.date(receipt, out);
            out.push(b'\t');
            out.extend_from_slice(rng.pick(&INSTRUCTIONS).as_bytes());
            out.push(b'\t');
            out.extend_from_slice(rng.pick(&SHIP_MODES).as_bytes());
            out.push(b'\t');
            self.comment(&mut rng, 10, 43, out);
        }
        lines as u64
    }
}
