//! Log timestamps (`%m`, `%t`, `%n`, csvlog/jsonlog `log_time`) to microseconds since the epoch.
//!
//! Zone: `UTC`/`GMT`/`Z`, numeric (`+03`, `-0330`, `+05:30`) and a table of common
//! abbreviations. An unknown abbreviation is read as UTC: absolute times are then off by the
//! zone's offset, but the relative timing replay needs is right.

use crate::calendar::days_from_civil;

#[inline]
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let s = b.get(at..at + len)?;
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Offset in seconds east of UTC of a zone abbreviation or numeric zone.
fn zone_offset(z: &[u8]) -> Option<i64> {
    if let Some(&sign) = z.first() {
        if sign == b'+' || sign == b'-' {
            let rest: Vec<u8> = z[1..].iter().copied().filter(|c| *c != b':').collect();
            let (h, m) = match rest.len() {
                1 | 2 => (digits(&rest, 0, rest.len())?, 0),
                3 => (digits(&rest, 0, 1)?, digits(&rest, 1, 2)?),
                4 => (digits(&rest, 0, 2)?, digits(&rest, 2, 2)?),
                _ => return None,
            };
            let off = h * 3600 + m * 60;
            return Some(if sign == b'-' { -off } else { off });
        }
    }
    let hours: f64 = match z {
        b"UTC" | b"GMT" | b"Z" | b"UT" | b"WET" => 0.0,
        b"BST" | b"CET" | b"WEST" | b"MET" => 1.0,
        b"CEST" | b"EET" | b"SAST" | b"MEST" => 2.0,
        b"EEST" | b"MSK" | b"IDT" => 3.0,
        b"IST" => 5.5,
        b"HKT" | b"AWST" | b"SGT" => 8.0,
        b"JST" | b"KST" => 9.0,
        b"ACST" => 9.5,
        b"AEST" => 10.0,
        b"ACDT" => 10.5,
        b"AEDT" => 11.0,
        b"NZST" => 12.0,
        b"NZDT" => 13.0,
        b"ADT" => -3.0,
        b"AST" | b"EDT" => -4.0,
        b"EST" | b"CDT" => -5.0,
        b"CST" | b"MDT" => -6.0,
        b"MST" | b"PDT" => -7.0,
        b"PST" | b"AKDT" => -8.0,
        b"AKST" | b"HDT" => -9.0,
        b"HST" => -10.0,
        _ => return None,
    };
    Some((hours * 3600.0) as i64)
}

/// Length of a `YYYY-MM-DD HH:MM:SS[.frac] ZONE` timestamp at the start of `b`
/// (zone = a run of letters, digits, `+`, `-`, `:`), and its value.
pub fn parse_datetime(b: &[u8]) -> Option<(usize, i64)> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let y = digits(b, 0, 4)?;
    let mo = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    let h = digits(b, 11, 2)?;
    let mi = digits(b, 14, 2)?;
    let s = digits(b, 17, 2)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 24 || mi > 59 || s > 60 {
        return None;
    }
    let mut pos = 19;
    let mut micros = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start).min(6)..6 {
            micros *= 10;
        }
    }
    let mut offset = 0;
    if b.get(pos) == Some(&b' ') {
        let zs = pos + 1;
        let mut ze = zs;
        while ze < b.len() && (b[ze].is_ascii_alphanumeric() || matches!(b[ze], b'+' | b'-' | b':'))
        {
            ze += 1;
        }
        if ze > zs {
            // A trailing ':' belongs to the text after the timestamp (e.g. prefix "%t: ").
            while ze > zs + 1 && b[ze - 1] == b':' {
                ze -= 1;
            }
            offset = zone_offset(&b[zs..ze]).unwrap_or(0);
            pos = ze;
        }
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some((pos, secs * 1_000_000 + micros))
}

/// `%n`: seconds since the epoch with a fraction (`1700000000.123`).
pub fn parse_epoch(b: &[u8]) -> Option<(usize, i64)> {
    let mut pos = 0;
    let mut secs = 0i64;
    while pos < b.len() && b[pos].is_ascii_digit() && pos < 15 {
        secs = secs * 10 + i64::from(b[pos] - b'0');
        pos += 1;
    }
    if pos == 0 {
        return None;
    }
    let mut micros = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        for _ in (pos - start).min(6)..6 {
            micros *= 10;
        }
    }
    Some((pos, secs * 1_000_000 + micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_times() {
        let (len, us) = parse_datetime(b"2026-11-22 02:19:39.684 UTC,rest").unwrap();
        assert_eq!(len, 27);
        assert_eq!(us, 1_795_313_979_684_000);
        let (_, cet) = parse_datetime(b"2026-11-22 03:19:39.684 CET").unwrap();
        assert_eq!(cet, us);
        let (_, num) = parse_datetime(b"2026-11-22 07:49:39.684 +0530").unwrap();
        assert_eq!(num, us);
        let (len, plain) = parse_datetime(b"2026-11-22 02:19:39 UTC [1]").unwrap();
        assert_eq!(len, 23);
        assert_eq!(plain, 1_795_313_979_000_000);
        assert_eq!(parse_datetime(b"2026-1x-22 02:19:39 UTC"), None);
        assert_eq!(parse_datetime(b"2026-11-22"), None);
        assert_eq!(
            parse_epoch(b"1795313979.684 ["),
            Some((14, 1_795_313_979_684_000))
        );
    }
}
