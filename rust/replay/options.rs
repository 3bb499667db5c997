//! Replay options, their validation, and the SQL text of per-template settings.

use std::collections::HashMap;
use std::sync::Arc;

use super::ReplayError;

/// How to replay a trace.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// `Some(f)`: replay at the logged timing scaled by `1/f` (1.0 = original rate, 2.0 =
    /// twice as fast); `None`: as fast as possible.
    pub speed: Option<f64>,
    /// `None`: one connection per logged session. `Some(k)`: at most `k` connections;
    /// sessions are multiplexed onto them between transactions.
    pub concurrency: Option<usize>,
    /// `SET statement_timeout` (milliseconds) on every connection.
    pub statement_timeout_ms: Option<u64>,
    /// Per-template settings, applied with `SET LOCAL` around that template's statements.
    pub template_settings: HashMap<u32, Vec<(String, String)>>,
    /// Connection threads, each with its own runtime (default: one per connection, at
    /// most max(8, cores)).
    pub threads: Option<usize>,
    /// Whose user and database each session's connection logs in with.
    pub identity: Identity,
}

/// Whose user and database a replayed session connects as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Identity {
    /// The DSN's, for every session.
    #[default]
    Dsn,
    /// The session's logged user and database (the DSN's where the log has none), with the
    /// DSN's password and other settings. Needs one connection per session.
    Logged,
}

/// The settings of one template as ready-to-send SQL.
#[derive(Debug)]
pub struct Settings {
    /// `SET LOCAL a = 'x'; SET LOCAL b = 'y'`
    pub set_local: String,
    /// `SELECT current_setting('a'), current_setting('b')`
    pub read_current: String,
    pub names: Vec<String>,
}

impl Settings {
    /// `SET LOCAL` statements restoring `values` (in the order of `names`).
    pub fn restore_sql(&self, values: &[String]) -> String {
        set_local_sql(
            self.names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str)),
        )
    }
}

fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn set_local_sql<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .map(|(k, v)| format!("SET LOCAL {k} = {}", quote_literal(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl ReplayOptions {
    pub(crate) fn validate(&self, n_templates: usize) -> Result<(), ReplayError> {
        if let Some(s) = self.speed {
            if !(s.is_finite() && s > 0.0) {
                return Err(ReplayError::InvalidOption(format!(
                    "speed must be a positive finite number or None (as fast as possible), got {s}"
                )));
            }
        }
        if self.concurrency == Some(0) {
            return Err(ReplayError::InvalidOption(
                "concurrency must be at least 1 (or None: one connection per session)".into(),
            ));
        }
        if self.identity == Identity::Logged && self.concurrency.is_some() {
            return Err(ReplayError::InvalidOption(
                "the logged identity (identity='logged', --logged-identity) needs one \
                 connection per session, without a concurrency limit: multiplexed sessions \
                 would share one login"
                    .into(),
            ));
        }
        if self.threads == Some(0) {
            return Err(ReplayError::InvalidOption(
                "threads must be at least 1".into(),
            ));
        }
        let mut ids: Vec<_> = self.template_settings.keys().collect();
        ids.sort();
        for id in ids {
            if *id as usize >= n_templates {
                return Err(ReplayError::InvalidOption(format!(
                    "template_settings[{id}]: the trace has no template {id} (it has {n_templates})"
                )));
            }
            for (k, _) in &self.template_settings[id] {
                if !valid_name(k) {
                    return Err(ReplayError::InvalidOption(format!(
                        "template_settings[{id}]: {k:?} is not a setting name"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Settings by template id (dense, `None` where a template has none).
    pub(crate) fn settings_table(&self, n_templates: usize) -> Vec<Option<Arc<Settings>>> {
        let mut table: Vec<Option<Arc<Settings>>> = vec![None; n_templates];
        for (&id, pairs) in &self.template_settings {
            if pairs.is_empty() {
                continue;
            }
            let names: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
            let read_current = format!(
                "SELECT {}",
                names
                    .iter()
                    .map(|k| format!("current_setting({})", quote_literal(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let set_local = set_local_sql(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            table[id as usize] = Some(Arc::new(Settings {
                set_local,
                read_current,
                names,
            }));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_sql_is_quoted() {
        let mut o = ReplayOptions::default();
        o.template_settings.insert(
            1,
            vec![
                ("enable_hashjoin".into(), "off".into()),
                ("search_path".into(), "a'b".into()),
            ],
        );
        o.validate(2).unwrap();
        let t = o.settings_table(2);
        assert!(t[0].is_none());
        let s = t[1].as_ref().unwrap();
        assert_eq!(
            s.set_local,
            "SET LOCAL enable_hashjoin = 'off'; SET LOCAL search_path = 'a''b'"
        );
        assert_eq!(
            s.read_current,
            "SELECT current_setting('enable_hashjoin'), current_setting('search_path')"
        );
        assert_eq!(
            s.restore_sql(&["on".into(), "x".into()]),
            "SET LOCAL enable_hashjoin = 'on'; SET LOCAL search_path = 'x'"
        );
    }

    #[test]
    fn bad_options_are_named() {
        let mut o = ReplayOptions {
            speed: Some(0.0),
            ..Default::default()
        };
        assert!(o.validate(1).unwrap_err().to_string().contains("speed"));
        o.speed = Some(f64::NAN);
        assert!(o.validate(1).is_err());
        o.speed = None;
        o.concurrency = Some(0);
        assert!(o
            .validate(1)
            .unwrap_err()
            .to_string()
            .contains("concurrency"));
        o.identity = Identity::Logged;
        o.concurrency = Some(2);
        let msg = o.validate(1).unwrap_err().to_string();
        assert!(msg.contains("identity"), "{msg}");
        o.concurrency = None;
        o.validate(1).unwrap();
        o.template_settings
            .insert(3, vec![("a".into(), "b".into())]);
        let msg = o.validate(2).unwrap_err().to_string();
        assert!(msg.contains("template_settings[3]"), "{msg}");
        o.template_settings.clear();
        o.template_settings
            .insert(0, vec![("x; drop".into(), "b".into())]);
        let msg = o.validate(2).unwrap_err().to_string();
        assert!(msg.contains("not a setting name"), "{msg}");
    }
}
