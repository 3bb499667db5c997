//! The eight TPC-H tables as PostgreSQL COPY text, generated in chunks.
//!
//! Cardinalities, keys and value domains follow the specification (clause 4.2.3): region 5,
//! nation 25, supplier SF*10,000, customer SF*150,000, part SF*200,000, partsupp 4 per part,
//! orders SF*1,500,000 (sparse keys: 8 of every 32), lineitem 1 to 7 per order. Each row draws
//! from its own generator (see `rng`), so any chunking yields the same bytes.

use std::ops::Range;

use rayon::prelude::*;

use super::dists::*;
use super::fmt::{self, days_from_civil};
use super::text::{self, TextPool, POOL_BYTES};
use super::{check_scale, TpchError};
use crate::benchmarks::rng::Rng;

mod orders;
#[cfg(test)]
mod tests;

/// The eight tables, in load order (referenced tables first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Region,
    Nation,
    Part,
    Supplier,
    PartSupp,
    Customer,
    Orders,
    Lineitem,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Region,
        Table::Nation,
        Table::Part,
        Table::Supplier,
        Table::PartSupp,
        Table::Customer,
        Table::Orders,
        Table::Lineitem,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Region => "region",
            Table::Nation => "nation",
            Table::Part => "part",
            Table::Supplier => "supplier",
            Table::PartSupp => "partsupp",
            Table::Customer => "customer",
            Table::Orders => "orders",
            Table::Lineitem => "lineitem",
        }
    }

    pub fn from_name(name: &str) -> Result<Table, TpchError> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| TpchError::UnknownTable(name.to_string()))
    }

    /// Random-stream tag of the table's rows.
    fn tag(self) -> u64 {
        self as u64 + 1
    }

    /// Approximate bytes of COPY text per generation unit (row; for lineitem: order).
    pub(crate) fn unit_bytes(self) -> u64 {
        match self {
            Table::Region | Table::Nation => 100,
            Table::Part => 130,
            Table::Supplier => 140,
            Table::PartSupp => 4 * 145,
            Table::Customer => 160,
            Table::Orders => 110,
            Table::Lineitem => 4 * 125,
        }
    }
}

const LINE_TAG: u64 = 100;
const COMPLAINT_TAG: u64 = 101;

/// 1992-01-01, 1995-06-17 and 1998-12-31 as days since 1970-01-01.
pub const START_DATE: i64 = days_from_civil(1992, 1, 1);
pub const CURRENT_DATE: i64 = days_from_civil(1995, 6, 17);
pub const END_DATE: i64 = days_from_civil(1998, 12, 31);

/// Row counts of the scaled tables at a scale factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub supplier: u64,
    pub customer: u64,
    pub part: u64,
    pub orders: u64,
    pub clerks: u64,
}

impl Counts {
    pub fn new(scale: f64) -> Result<Counts, TpchError> {
        check_scale(scale)?;
        let n = |base: f64| ((base * scale) + 1e-6).floor() as u64;
        Ok(Counts {
            supplier: n(10_000.0),
            customer: n(150_000.0),
            part: n(200_000.0),
            orders: n(1_500_000.0),
            clerks: n(1_000.0).max(1),
        })
    }
}

/// Key of the `i`-th order (0-based): only the first 8 of each 32 keys are used.
#[inline]
pub fn order_key(i: u64) -> i64 {
    ((i / 8) * 32 + i % 8 + 1) as i64
}

/// P_RETAILPRICE in hundredths (clause 4.2.3).
#[inline]
pub fn retail_cents(partkey: i64) -> i64 {
    90_000 + ((partkey / 10) % 20_001) + 100 * (partkey % 1_000)
}

/// Supplier key of the `i`-th (0..4) supplier of a part.
#[inline]
pub fn partsupp_suppkey(partkey: i64, i: i64, suppliers: i64) -> i64 {
    (partkey + i * (suppliers / 4 + (partkey - 1) / suppliers)) % suppliers + 1
}

/// A deterministic generator of all eight tables at one scale factor and seed.
pub struct Generator {
    pub seed: u64,
    pub scale: f64,
    pub counts: Counts,
    pool: TextPool,
    dates: Vec<[u8; 10]>,
}

impl Generator {
    pub fn new(scale: f64, seed: u64) -> Result<Generator, TpchError> {
        let counts = Counts::new(scale)?;
        let dates = (START_DATE..=END_DATE)
            .map(|d| {
                let mut b = [0u8; 10];
                b.copy_from_slice(fmt::date_string(d).as_bytes());
                b
            })
            .collect();
        Ok(Generator {
            seed,
            scale,
            counts,
            pool: TextPool::new(seed, POOL_BYTES),
            dates,
        })
    }

    /// Generation units of a table: rows, except partsupp (parts) and lineitem (orders).
    pub fn units(&self, table: Table) -> u64 {
        match table {
            Table::Region => 5,
            Table::Nation => 25,
            Table::Part | Table::PartSupp => self.counts.part,
            Table::Supplier => self.counts.supplier,
            Table::Customer => self.counts.customer,
            Table::Orders | Table::Lineitem => self.counts.orders,
        }
    }

    /// Row count of a table (lineitem is counted by drawing each order's line count).
    pub fn rows(&self, table: Table) -> u64 {
        match table {
            Table::PartSupp => 4 * self.counts.part,
            Table::Lineitem => crate::pool::install(|| {
                (0..self.counts.orders)
                    .into_par_iter()
                    .map(|i| self.order_lines(i) as u64)
                    .sum()
            }),
            t => self.units(t),
        }
    }

    /// Unit ranges of about `target_bytes` of COPY text each, covering the table.
    pub fn chunks(&self, table: Table, target_bytes: u64) -> Vec<Range<u64>> {
        let step = (target_bytes / table.unit_bytes()).max(1);
        let units = self.units(table);
        (0..units.div_ceil(step))
            .map(|c| c * step..((c + 1) * step).min(units))
            .collect()
    }

    /// Appends the rows of units `range` of `table` to `out`; returns the rows written.
    pub fn write(&self, table: Table, range: Range<u64>, out: &mut Vec<u8>) -> u64 {
        let mut rows = 0;
        for i in range {
            rows += match table {
                Table::Region => self.region(i, out),
                Table::Nation => self.nation(i, out),
                Table::Part => self.part(i, out),
                Table::Supplier => self.supplier(i, out),
                Table::PartSupp => self.partsupp(i, out),
                Table::Customer => self.customer(i, out),
                Table::Orders => self.order(i, out),
                Table::Lineitem => self.lineitems(i, out),
            };
        }
        rows
    }

    /// The whole table as COPY text, generated in parallel.
    pub fn table(&self, table: Table) -> Vec<u8> {
        crate::pool::install(|| {
            let parts: Vec<Vec<u8>> = self
                .chunks(table, 4 << 20)
                .into_par_iter()
                .map(|r| {
                    let mut out =
                        Vec::with_capacity(((r.end - r.start) * table.unit_bytes()) as usize);
                    self.write(table, r, &mut out);
                    out
                })
                .collect();
            parts.concat()
        })
    }

    #[inline]
    fn date(&self, days: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dates[(days - START_DATE) as usize]);
    }

    #[inline]
    fn comment(&self, rng: &mut Rng, min: usize, max: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.pool.comment(rng, min, max));
        out.push(b'\n');
    }

    fn phone(rng: &mut Rng, nation: i64, out: &mut Vec<u8>) {
        fmt::int(out, nation + 10);
        out.push(b'-');
        fmt::int(out, rng.range(100, 999));
        out.push(b'-');
        fmt::int(out, rng.range(100, 999));
        out.push(b'-');
        fmt::int(out, rng.range(1000, 9999));
    }

    fn region(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let mut rng = Rng::for_row(self.seed, Table::Region.tag(), i);
        fmt::int(out, i as i64);
        out.push(b'\t');
        out.extend_from_slice(REGIONS[i as usize].as_bytes());
        out.push(b'\t');
        self.comment(&mut rng, 31, 115, out);
        1
    }

    fn nation(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let mut rng = Rng::for_row(self.seed, Table::Nation.tag(), i);
        let (name, region) = NATIONS[i as usize];
        fmt::int(out, i as i64);
        out.push(b'\t');
        out.extend_from_slice(name.as_bytes());
        out.push(b'\t');
        fmt::int(out, region);
        out.push(b'\t');
        self.comment(&mut rng, 31, 114, out);
        1
    }

    fn part(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let mut rng = Rng::for_row(self.seed, Table::Part.tag(), i);
        let key = i as i64 + 1;
        fmt::int(out, key);
        out.push(b'\t');
        let mut picked = [usize::MAX; 5];
        for slot in 0..5 {
            let mut c = rng.index(COLORS.len());
            while picked[..slot].contains(&c) {
                c = rng.index(COLORS.len());
            }
            picked[slot] = c;
            if slot > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(COLORS[c].as_bytes());
        }
        let m = rng.range(1, 5);
        out.extend_from_slice(b"\tManufacturer#");
        fmt::int(out, m);
        out.extend_from_slice(b"\tBrand#");
        fmt::int(out, m * 10 + rng.range(1, 5));
        out.push(b'\t');
        out.extend_from_slice(rng.pick(&TYPE_S1).as_bytes());
        out.push(b' ');
        out.extend_from_slice(rng.pick(&TYPE_S2).as_bytes());
        out.push(b' ');
        out.extend_from_slice(rng.pick(&TYPE_S3).as_bytes());
        out.push(b'\t');
        fmt::int(out, rng.range(1, 50));
        out.push(b'\t');
        out.extend_from_slice(rng.pick(&CONTAINER_S1).as_bytes());
        out.push(b' ');
        out.extend_from_slice(rng.pick(&CONTAINER_S2).as_bytes());
        out.push(b'\t');
        fmt::cents(out, retail_cents(key));
        out.push(b'\t');
        self.comment(&mut rng, 5, 22, out);
        1
    }

    /// Rows `[k*2000, (k+1)*2000)` hold one "Customer%Complaints" comment (first half of the
    /// bucket) and one "Customer%Recommends" (second half): SF*5 each, as clause 4.2.3 asks.
    fn complaint_kind(&self, i: u64) -> Option<&'static [u8]> {
        const BUCKET: u64 = 2_000;
        let k = i / BUCKET;
        let start = k * BUCKET;
        let len = BUCKET.min(self.counts.supplier - start);
        if len < 2 {
            return None;
        }
        let mut rng = Rng::for_row(self.seed, COMPLAINT_TAG, k);
        let half = len / 2;
        let complaint = start + rng.index(half as usize) as u64;
        let recommend = start + half + rng.index((len - half) as usize) as u64;
        if i == complaint {
            Some(b"Complaints")
        } else if i == recommend {
            Some(b"Recommends")
        } else {
            None
        }
    }

    fn supplier(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let mut rng = Rng::for_row(self.seed, Table::Supplier.tag(), i);
        let key = i as i64 + 1;
        fmt::int(out, key);
        out.extend_from_slice(b"\tSupplier#");
        fmt::padded(out, key as u64, 9);
        out.push(b'\t');
        text::vstring(&mut rng, 10, 40, out);
        out.push(b'\t');
        let nation = rng.range(0, 24);
        fmt::int(out, nation);
        out.push(b'\t');
        Self::phone(&mut rng, nation, out);
        out.push(b'\t');
        fmt::cents(out, rng.range(-99_999, 999_999));
        out.push(b'\t');
        match self.complaint_kind(i) {
            None => self.comment(&mut rng, 25, 100, out),
            Some(word) => {
                // "Customer " + noise + word inside a comment of the drawn length.
                let len = rng.range(25, 100) as usize;
                let room = len - 19;
                let noise = rng.index(room + 1);
                let before = rng.index(room - noise + 1);
                out.extend_from_slice(self.pool.slice(&mut rng, before));
                out.extend_from_slice(b"Customer ");
                out.extend_from_slice(self.pool.slice(&mut rng, noise));
                out.extend_from_slice(word);
                out.extend_from_slice(self.pool.slice(&mut rng, room - noise - before));
                out.push(b'\n');
            }
        }
        1
    }

    fn partsupp(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let partkey = i as i64 + 1;
        let suppliers = self.counts.supplier as i64;
        for j in 0..4 {
            let mut rng = Rng::for_row(self.seed, Table::PartSupp.tag(), i * 4 + j);
            fmt::int(out, partkey);
            out.push(b'\t');
            fmt::int(out, partsupp_suppkey(partkey, j as i64, suppliers));
            out.push(b'\t');
            fmt::int(out, rng.range(1, 9_999));
            out.push(b'\t');
            fmt::cents(out, rng.range(100, 100_000));
            out.push(b'\t');
            self.comment(&mut rng, 49, 198, out);
        }
        4
    }

    fn customer(&self, i: u64, out: &mut Vec<u8>) -> u64 {
        let mut rng = Rng::for_row(self.seed, Table::Customer.tag(), i);
        let key = i as i64 + 1;
        fmt::int(out, key);
        out.extend_from_slice(b"\tCustomer#");
        fmt::padded(out, key as u64, 9);
        out.push(b'\t');
        text::vstring(&mut rng, 10, 40, out);
        out.push(b'\t');
        let nation = rng.range(0, 24);
        fmt::int(out, nation);
        out.push(b'\t');
        Self::phone(&mut rng, nation, out);
        out.push(b'\t');
        fmt::cents(out, rng.range(-99_999, 999_999));
        out.push(b'\t');
        out.extend_from_slice(rng.pick(&SEGMENTS).as_bytes());
        out.push(b'\t');
        self.comment(&mut rng, 29, 116, out);
        1
    }
}
