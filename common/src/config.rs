//! Layered configuration: defaults < TOML file < environment < flags.
//!
//! Each daemon describes its configuration as a serde struct whose
//! `Default` holds the documented defaults. [`load_layered`] merges, in
//! order, those defaults, an optional TOML file, environment variables with
//! the daemon's prefix (`TUSK_NAMENODE_NAME_DIR=/x` sets `name_dir`), and the
//! flags given on the command line (any serializable struct whose `None`
//! fields are skipped).

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Serialize, de::DeserializeOwned};
use std::path::Path;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: no such file")]
    Missing(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Loads a configuration: defaults, then `file`, then environment variables
/// starting with `env_prefix`, then `flags`.
pub fn load_layered<T, F>(file: Option<&Path>, env_prefix: &str, flags: &F) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
    F: Serialize,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError::Missing(file.display().to_string()));
        }
        fig = fig.merge(Toml::file_exact(file));
    }
    fig = fig.merge(Env::prefixed(env_prefix)).merge(Serialized::defaults(flags));
    fig.extract().map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// Parses one TOML document into a configuration, over the defaults.
pub fn parse_toml<T>(text: &str) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    Figment::from(Serialized::defaults(T::default()))
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Conf {
        a: u32,
        b: String,
        c: bool,
    }
    impl Default for Conf {
        fn default() -> Self {
            Conf { a: 1, b: "x".into(), c: false }
        }
    }
    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        c: Option<bool>,
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "a = 5\nb = \"file\"\n").unwrap();
        // Unique prefix so parallel tests do not interfere.
        unsafe { std::env::set_var("TUSKTEST_LAYERS_B", "env") };
        let c: Conf = load_layered(Some(&f), "TUSKTEST_LAYERS_", &Flags { c: Some(true) }).unwrap();
        assert_eq!(c, Conf { a: 5, b: "env".into(), c: true });
        let c: Conf = load_layered(None, "TUSKTEST_NONE_", &Flags { c: None }).unwrap();
        assert_eq!(c, Conf::default());
    }

    #[test]
    fn missing_file_and_bad_values_are_named() {
        let err = load_layered::<Conf, _>(Some(Path::new("/nope.toml")), "X_", &Flags { c: None }).unwrap_err();
        assert!(err.to_string().contains("/nope.toml"), "{err}");
        let err = parse_toml::<Conf>("a = \"many\"").unwrap_err();
        assert!(err.to_string().contains('a'), "{err}");
    }
}
