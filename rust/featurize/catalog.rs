//! The database catalog a featurization is relative to: relation, index and column
//! names, in a fixed order that fixes the one-hot columns. Serialized as JSON so that
//! features computed in different sessions stay comparable.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Tag written into serialized catalogs.
pub const CATALOG_FORMAT: &str = "dbgym.plan_catalog";
/// Version of the serialized form.
pub const CATALOG_VERSION: u32 = 1;

/// Relations, indexes and columns (`"relation.column"`) of a database, in one-hot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    relations: Vec<String>,
    indexes: Vec<String>,
    columns: Vec<String>,
    relation_ids: HashMap<String, u32>,
    index_ids: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    version: u32,
    relations: Vec<String>,
    indexes: Vec<String>,
    columns: Vec<String>,
}

fn ids(kind: &str, names: &[String]) -> Result<HashMap<String, u32>, String> {
    let mut map = HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("{kind} #{i} is an empty name"));
        }
        let id = u32::try_from(i).map_err(|_| format!("too many {kind}s"))?;
        if map.insert(name.clone(), id).is_some() {
            return Err(format!("{kind} {name:?} is listed twice"));
        }
    }
    Ok(map)
}

impl PlanCatalog {
    /// Build a catalog; names must be unique within each list and non-empty.
    pub fn new(
        relations: Vec<String>,
        indexes: Vec<String>,
        columns: Vec<String>,
    ) -> Result<Self, String> {
        let relation_ids = ids("relation", &relations)?;
        let index_ids = ids("index", &indexes)?;
        ids("column", &columns)?;
        Ok(PlanCatalog {
            relations,
            indexes,
            columns,
            relation_ids,
            index_ids,
        })
    }

    pub fn relations(&self) -> &[String] {
        &self.relations
    }

    pub fn indexes(&self) -> &[String] {
        &self.indexes
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// One-hot position of a relation, `relations().len()` ("other") when unknown.
    #[inline]
    pub fn relation_id(&self, name: &str) -> usize {
        self.relation_ids
            .get(name)
            .map_or(self.relations.len(), |&i| i as usize)
    }

    /// One-hot position of an index, `indexes().len()` ("other") when unknown.
    #[inline]
    pub fn index_id(&self, name: &str) -> usize {
        self.index_ids
            .get(name)
            .map_or(self.indexes.len(), |&i| i as usize)
    }

    /// The serialized form: `{"format": "dbgym.plan_catalog", "version": 1, ...}`.
    pub fn to_json(&self) -> String {
        let stored = Stored {
            format: CATALOG_FORMAT.to_owned(),
            version: CATALOG_VERSION,
            relations: self.relations.clone(),
            indexes: self.indexes.clone(),
            columns: self.columns.clone(),
        };
        // Serializing strings and integers into a String cannot fail.
        serde_json::to_string_pretty(&stored).unwrap_or_default()
    }

    /// Read the form written by [`PlanCatalog::to_json`].
    pub fn from_json(text: &str) -> Result<Self, String> {
        let stored: Stored =
            serde_json::from_str(text).map_err(|e| format!("not a plan catalog: {e}"))?;
        if stored.format != CATALOG_FORMAT {
            return Err(format!(
                "not a plan catalog: format is {:?}, expected {CATALOG_FORMAT:?}",
                stored.format
            ));
        }
        if stored.version != CATALOG_VERSION {
            return Err(format!(
                "plan catalog version {} is not supported (this build reads version {CATALOG_VERSION})",
                stored.version
            ));
        }
        PlanCatalog::new(stored.relations, stored.indexes, stored.columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn json_round_trip_keeps_order() {
        let cat = PlanCatalog::new(
            strings(&["orders", "lineitem"]),
            strings(&["orders_pkey"]),
            strings(&["orders.o_orderkey", "lineitem.l_orderkey"]),
        )
        .unwrap();
        let back = PlanCatalog::from_json(&cat.to_json()).unwrap();
        assert_eq!(back, cat);
        assert_eq!(back.relation_id("lineitem"), 1);
        assert_eq!(back.relation_id("nation"), 2);
        assert_eq!(back.index_id("orders_pkey"), 0);
        assert_eq!(back.index_id("x"), 1);
    }

    #[test]
    fn duplicates_and_bad_json_are_rejected() {
        let err = PlanCatalog::new(strings(&["a", "a"]), vec![], vec![]).unwrap_err();
        assert!(err.contains("\"a\" is listed twice"), "{err}");
        let err = PlanCatalog::from_json("{\"format\": \"x\"}").unwrap_err();
        assert!(err.starts_with("not a plan catalog"), "{err}");
        let err = PlanCatalog::from_json(
            "{\"format\":\"dbgym.plan_catalog\",\"version\":9,\"relations\":[],\"indexes\":[],\"columns\":[]}",
        )
        .unwrap_err();
        assert!(err.contains("version 9"), "{err}");
    }
}
