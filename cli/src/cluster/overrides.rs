//! `--nn-conf KEY=VALUE` / `--dn-conf KEY=VALUE`: any daemon setting of a
//! new local cluster, given on the command line.

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses `VALUE` as a TOML value (number, boolean, quoted string, array),
/// falling back to a bare string.
fn parse_value(v: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

/// Returns `config` with every `KEY=VALUE` of `sets` applied. An unknown key
/// or a value of the wrong type is an error naming it.
pub fn apply<T: Serialize + DeserializeOwned>(config: &T, sets: &[String], what: &str) -> anyhow::Result<T> {
    if sets.is_empty() {
        return toml::Value::try_from(config)?.try_into().context("config round trip");
    }
    let mut table = toml::Table::try_from(config).context("serializing the config")?;
    for s in sets {
        let Some((k, v)) = s.split_once('=') else { bail!("{what} setting '{s}': expected KEY=VALUE") };
        table.insert(k.trim().to_string(), parse_value(v.trim()));
    }
    let out: T = toml::Value::Table(table.clone())
        .try_into()
        .with_context(|| format!("{what} settings {sets:?}"))?;
    // A key the config does not know disappears in the round trip.
    let back = toml::Table::try_from(&out).context("serializing the config")?;
    for s in sets {
        let k = s.split_once('=').map(|(k, _)| k.trim()).unwrap_or_default();
        if !back.contains_key(k) {
            bail!("{what} setting '{k}': no such setting");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_namenode::NamenodeConfig;

    #[test]
    fn typed_values_unknown_keys_and_bad_types() {
        let c = NamenodeConfig::default();
        let sets = vec!["dead_node_interval_ms=3000".to_string(), "supergroup = admins".to_string()];
        let out = apply(&c, &sets, "namenode").unwrap();
        assert_eq!(out.dead_node_interval_ms, 3000);
        assert_eq!(out.supergroup, "admins");
        let e = apply(&c, &["no_such=1".to_string()], "namenode").unwrap_err();
        assert!(e.to_string().contains("no_such"), "{e}");
        let e = apply(&c, &["dead_node_interval_ms=soon".to_string()], "namenode").unwrap_err();
        assert!(format!("{e:#}").contains("dead_node_interval_ms"), "{e:#}");
        assert!(apply(&c, &["x".to_string()], "namenode").is_err());
    }
}
