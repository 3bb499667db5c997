//! Writing values in PostgreSQL COPY text format, without allocation.

pub use crate::calendar::{civil_from_days, days_from_civil};

/// `YYYY-MM-DD` of days since 1970-01-01.
pub fn date_string(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Appends an integer.
#[inline]
pub fn int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a non-negative integer zero-padded to `width` digits.
#[inline]
pub fn padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut n = v;
    let mut i = buf.len();
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = (buf.len() - width).min(i);
    out.extend_from_slice(&buf[start..]);
}

/// Appends an amount given in hundredths as a decimal with two digits (`-12.05`).
#[inline]
pub fn cents(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let a = v.unsigned_abs();
    int(out, (a / 100) as i64);
    out.push(b'.');
    let c = (a % 100) as u8;
    out.push(b'0' + c / 10);
    out.push(b'0' + c % 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_format() {
        let mut out = Vec::new();
        int(&mut out, -120);
        out.push(b' ');
        int(&mut out, 0);
        out.push(b' ');
        cents(&mut out, -5);
        out.push(b' ');
        cents(&mut out, 99_999);
        out.push(b' ');
        padded(&mut out, 42, 9);
        out.push(b' ');
        padded(&mut out, 1_234_567_890, 9);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "-120 0 -0.05 999.99 000000042 1234567890"
        );
        let d = days_from_civil(1992, 1, 1);
        assert_eq!(date_string(d), "1992-01-01");
        assert_eq!(date_string(d + 59), "1992-02-29");
        assert_eq!(days_from_civil(1998, 12, 31) - d, 2556);
        for day in d - 1000..d + 5000 {
            let (y, m, dd) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, dd), day);
        }
    }
}
