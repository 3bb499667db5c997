//! Connection strings (libpq URIs and key=value strings): parsing for tokio-postgres, keeping
//! the password out of every message, and the facts a connection error names.
//!
//! Every Rust error that mentions a DSN goes through [`redact_dsn`] or [`scrub`]: a password
//! may sit in a URI's userinfo (`postgresql://u:PASSWORD@h/db`, percent-encoded or not), in a
//! URI query (`?password=PASSWORD`) or in a key=value string (`password=PASSWORD`,
//! `password='with spaces'`), and all three are masked whether or not the string parses.

use std::error::Error as StdError;
use std::fmt;
use std::ops::Range;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// What a password is replaced with.
pub const MASK: &str = "***";

/// Shortest password also searched for in free text (shorter ones are masked only where a
/// DSN holds them: masking every "pw" in a message would garble it).
pub const MIN_SCRUB: usize = 3;

/// `dsn` with its password replaced by [`MASK`] (URI userinfo, URI query and key=value
/// forms), also where the string does not parse.
pub fn redact_dsn(dsn: &str) -> String {
    scrub(dsn, dsn)
}

/// `text` with every DSN password in it masked, and the password of `dsn` (as written,
/// percent-decoded or percent-encoded) masked wherever it appears.
pub fn scrub(text: &str, dsn: &str) -> String {
    let mut out = mask_spans(text);
    for raw in password_values(dsn) {
        out = scrub_secret(&out, &raw);
    }
    out
}

/// `text` with `secret` masked wherever it appears: as given, percent-decoded and
/// percent-encoded (secrets shorter than [`MIN_SCRUB`] are left alone).
pub fn scrub_secret(text: &str, secret: &str) -> String {
    let decoded = percent_decode(secret);
    let encoded = percent_encode(&decoded);
    let mut forms: Vec<String> = Vec::new();
    for form in [secret.to_string(), decoded, encoded] {
        if form.len() >= MIN_SCRUB && form != MASK && !forms.contains(&form) {
            forms.push(form);
        }
    }
    // Longest first, so no part of a longer form is left behind.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = text.to_string();
    for form in forms {
        out = out.replace(&form, MASK);
    }
    out
}

/// The password `dsn` holds (percent-decoded, unquoted), if any; also from a string that
/// does not parse.
pub fn password_of(dsn: &str) -> Option<String> {
    password_values(dsn)
        .into_iter()
        .next()
        .map(|raw| percent_decode(&raw))
}

/// The password values of `s` as written (key=value quotes removed, escapes resolved).
fn password_values(s: &str) -> Vec<String> {
    password_spans(s)
        .into_iter()
        .map(|r| unquote(&s[r]))
        .filter(|v| !v.is_empty())
        .collect()
}

fn mask_spans(s: &str) -> String {
    let spans = password_spans(s);
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for r in spans {
        if r.start < at || r.is_empty() {
            continue;
        }
        out.push_str(&s[at..r.start]);
        out.push_str(MASK);
        at = r.end;
    }
    out.push_str(&s[at..]);
    out
}

/// Byte ranges of the password values in `s`, in order, not overlapping.
fn password_spans(s: &str) -> Vec<Range<usize>> {
    let mut spans = uri_userinfo_spans(s);
    spans.extend(key_value_spans(s));
    spans.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for r in spans {
        match out.last_mut() {
            Some(last) if r.start < last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Ends a URI's authority (or a value in free text).
fn ends_authority(c: u8) -> bool {
    matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>') || c.is_ascii_whitespace()
}

/// The password part of `scheme://user:password@host` for every postgres(ql) URI in `s`.
/// libpq ends the userinfo at an '@'; masking up to the last '@' of the authority keeps the
/// tail of a password with a raw '@' in it hidden too.
fn uri_userinfo_spans(s: &str) -> Vec<Range<usize>> {
    let b = s.as_bytes();
    let lower = s.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = lower[from..].find("://") {
        let sep = from + k;
        from = sep + 3;
        let head = &lower[..sep];
        if !(head.ends_with("postgresql") || head.ends_with("postgres")) {
            continue;
        }
        let start = sep + 3;
        let end = b[start..]
            .iter()
            .position(|&c| ends_authority(c))
            .map_or(b.len(), |p| start + p);
        let Some(at) = b[start..end].iter().rposition(|&c| c == b'@') else {
            continue;
        };
        let at = start + at;
        if let Some(colon) = b[start..at].iter().position(|&c| c == b':') {
            out.push(start + colon + 1..at);
        }
    }
    out
}

/// The values of `password=...` (also `pgpassword=`) keys: key=value strings, URI queries,
/// environment dumps. A quoted value ends at its closing quote; an unquoted one at white
/// space, and inside a URI also at '&' or '#'.
fn key_value_spans(s: &str) -> Vec<Range<usize>> {
    const KEY: &str = "password";
    let b = s.as_bytes();
    let lower = s.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = lower[from..].find(KEY) {
        let key = from + k;
        from = key + KEY.len();
        let key_start = if lower[..key].ends_with("pg") {
            key - 2
        } else {
            key
        };
        if key_start > 0 {
            let prev = b[key_start - 1];
            if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'.' {
                continue;
            }
        }
        let mut i = key + KEY.len();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let start = i;
        if b.get(i) == Some(&b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
        } else {
            let in_uri = lower[..key].contains("://");
            while i < b.len()
                && !b[i].is_ascii_whitespace()
                && b[i] != b'"'
                && !(in_uri && (b[i] == b'&' || b[i] == b'#'))
            {
                i += 1;
            }
        }
        if i > start {
            out.push(start..i);
        }
        from = from.max(i);
    }
    out
}

/// A key=value value without its single quotes, backslash escapes resolved.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('\'') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Parses `dsn` for tokio-postgres; the error names the DSN with its password masked.
pub fn parse(dsn: &str) -> Result<Config, String> {
    dsn.parse::<Config>().map_err(|e| {
        format!(
            "invalid DSN {:?}: {}",
            redact_dsn(dsn),
            scrub(&error_chain(&e), dsn)
        )
    })
}

/// An error and its sources, joined by ": " (tokio-postgres's own message is only the
/// kind, e.g. "error connecting to server"; the cause says what happened).
pub fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Where a connection goes: host(s), port, user and database, as the client sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host names, socket directories or addresses, comma-separated.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
}

impl Endpoint {
    /// The endpoint of `cfg`, with tokio-postgres's defaults filled in (port 5432, the OS
    /// user, a database named like the user).
    pub fn of(cfg: &Config) -> Endpoint {
        let mut hosts: Vec<String> = cfg
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if hosts.is_empty() {
            hosts = cfg.get_hostaddrs().iter().map(|a| a.to_string()).collect();
        }
        let user = cfg
            .get_user()
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default();
        Endpoint {
            host: hosts.join(","),
            port: cfg.get_ports().first().copied().unwrap_or(5432),
            database: cfg.get_dbname().map_or_else(|| user.clone(), str::to_owned),
            user,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host {}, port {}, user {}, database {}",
            self.host, self.port, self.user, self.database
        )
    }
}

/// A failed connection: where to, the server's SQLSTATE (when the server answered) and its
/// message, or the client's (refused, unreachable, timed out). Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    pub endpoint: Endpoint,
    pub sqlstate: Option<String>,
    pub message: String,
}

impl ConnectFailure {
    /// The failure of connecting with `cfg`; its password is scrubbed from the message.
    pub fn new(cfg: &Config, e: &tokio_postgres::Error) -> ConnectFailure {
        let (sqlstate, message) = match e.as_db_error() {
            Some(db) => {
                let mut m = db.message().to_owned();
                if let Some(d) = db.detail() {
                    m.push_str(&format!(" (DETAIL: {d})"));
                }
                if let Some(h) = db.hint() {
                    m.push_str(&format!(" (HINT: {h})"));
                }
                (Some(db.code().code().to_owned()), m)
            }
            None => (e.code().map(|c| c.code().to_owned()), error_chain(e)),
        };
        let mut message = mask_spans(&message);
        if let Some(pw) = cfg.get_password() {
            message = scrub_secret(&message, &String::from_utf8_lossy(pw));
        }
        ConnectFailure {
            endpoint: Endpoint::of(cfg),
            sqlstate,
            message,
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.endpoint)?;
        if let Some(code) = &self.sqlstate {
            write!(f, ": SQLSTATE {code}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_userinfo_is_masked() {
        assert_eq!(
            redact_dsn("postgresql://u:secret@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(
            redact_dsn("postgres://u:secret@h:5433/db?sslmode=disable"),
            "postgres://u:***@h:5433/db?sslmode=disable"
        );
        // Percent-encoded, and a raw '@' inside the password.
        assert_eq!(
            redact_dsn("postgresql://u:s%40cr%2Fet@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(
            redact_dsn("postgresql://u:p@ss@h/db"),
            "postgresql://u:***@h/db"
        );
        // Upper-case scheme; no password at all stays as is.
        assert_eq!(
            redact_dsn("POSTGRESQL://u:secret@h/db"),
            "POSTGRESQL://u:***@h/db"
        );
        assert_eq!(redact_dsn("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(redact_dsn("postgresql:///db"), "postgresql:///db");
    }

    #[test]
    fn uri_query_password_is_masked() {
        assert_eq!(
            redact_dsn("postgresql://h/db?user=u&password=secret&sslmode=disable"),
            "postgresql://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_dsn("postgresql://h/db?password=s%26cret"),
            "postgresql://h/db?password=***"
        );
    }

    #[test]
    fn key_value_password_is_masked() {
        assert_eq!(
            redact_dsn("host=h password=secret dbname=db"),
            "host=h password=*** dbname=db"
        );
        assert_eq!(
            redact_dsn("host=h password = 'with \\' quote' dbname=db"),
            "host=h password = *** dbname=db"
        );
        assert_eq!(redact_dsn("password=a&b user=u"), "password=*** user=u");
        assert_eq!(redact_dsn("PGPASSWORD=secret"), "PGPASSWORD=***");
        // Not a password key.
        assert_eq!(redact_dsn("host=h mypassword=x"), "host=h mypassword=x");
        // An unterminated quote masks to the end.
        assert_eq!(redact_dsn("password='abc def"), "password=***");
    }

    #[test]
    fn unparsable_dsn_is_masked() {
        // tokio-postgres refuses both; the password must not survive in either.
        for dsn in [
            "postgresql://u:top%zzsecret@h:notaport/db",
            "host=h port=x password=topsecret",
        ] {
            let e = parse(dsn).unwrap_err();
            assert!(!e.contains("topsecret"), "{e}");
            assert!(!e.contains("secret"), "{e}");
            assert!(e.contains(MASK), "{e}");
        }
    }

    #[test]
    fn known_password_is_scrubbed_in_every_form() {
        let dsn = "postgresql://u:p%40ss%20word@h/db";
        assert_eq!(password_of(dsn).as_deref(), Some("p@ss word"));
        let text = "failed for p@ss word, p%40ss%20word and p%40ss%20word again";
        let out = scrub(text, dsn);
        assert!(
            !out.contains("ss word") && !out.contains("ss%20word"),
            "{out}"
        );
        assert_eq!(
            scrub("user=u password='a b c'", "password='a b c'"),
            "user=u password=***"
        );
        assert_eq!(scrub("said a b c", "password='a b c'"), "said ***");
        // Short passwords are masked where a DSN holds them, not searched in text.
        assert_eq!(scrub("pw ok", "password=pw"), "pw ok");
        assert_eq!(password_of("host=h"), None);
    }

    #[test]
    fn endpoint_names_the_target() {
        let cfg = parse("postgresql://alice:secret@db.example:6543/sales").unwrap();
        let ep = Endpoint::of(&cfg);
        assert_eq!(ep.host, "db.example");
        assert_eq!(ep.port, 6543);
        assert_eq!(ep.user, "alice");
        assert_eq!(ep.database, "sales");
        assert_eq!(
            ep.to_string(),
            "host db.example, port 6543, user alice, database sales"
        );
        let cfg = parse("host=/tmp,/run user=bob").unwrap();
        let ep = Endpoint::of(&cfg);
        assert_eq!((ep.host.as_str(), ep.port), ("/tmp,/run", 5432));
        assert_eq!(ep.database, "bob");
    }
}
