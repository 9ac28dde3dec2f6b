//! A model's `metadata_props`: the record of how it was made, as ordered key-value
//! pairs (in the order they are written, which is the order they are read back).

use super::pb::StringStringEntryProto;
use anyhow::{anyhow, Result};
use std::str::FromStr;

/// Metadata in file order. Reads by key; writes append, so the bytes written follow
/// the order the entries were set in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// The value recorded under `key` (the first, should a file repeat it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value under `key` read as a `T`: None when it is absent, an error naming
    /// the key and the value when it does not parse (worded to follow the file's name).
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| anyhow!("its metadata has {key} = '{v}', which is not a valid value"))
            })
            .transpose()
    }

    /// Appends `key = value`.
    pub fn push(&mut self, key: impl Into<String>, value: impl ToString) {
        self.entries.push((key.into(), value.to_string()));
    }

    /// The same metadata with `key = value` appended.
    pub fn with(mut self, key: impl Into<String>, value: impl ToString) -> Metadata {
        self.push(key, value);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.entries
    }

    pub fn from_proto(props: &[StringStringEntryProto]) -> Metadata {
        props.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
    }

    pub fn to_proto(&self) -> Vec<StringStringEntryProto> {
        self.entries
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

impl From<Vec<(String, String)>> for Metadata {
    fn from(entries: Vec<(String, String)>) -> Metadata {
        Metadata { entries }
    }
}

impl FromIterator<(String, String)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(entries: I) -> Metadata {
        Metadata {
            entries: entries.into_iter().collect(),
        }
    }
}

impl Extend<(String, String)> for Metadata {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, entries: I) {
        self.entries.extend(entries)
    }
}

impl IntoIterator for Metadata {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Metadata reads as the slice of pairs it is, for code that takes `&[(String, String)]`
/// (a run's identity, the checkpoint checks).
impl std::ops::Deref for Metadata {
    type Target = [(String, String)];

    fn deref(&self) -> &[(String, String)] {
        &self.entries
    }
}

/// How a model srgraph writes was made, recorded after its network's own metadata (and
/// its training configuration, for training graphs) in this order: `graph`,
/// `parameters`, `training_steps`, `srgraph_version`, `command`. The models `build`,
/// `serve`, `train` and `import` write all go through [`Provenance::record`], so they
/// agree on keys and order.
pub struct Provenance<'a> {
    /// What the graph is: "inference", "training-form", "train-step", "gradients", "eval".
    pub graph: &'a str,
    /// Learned parameters of the network, counted in its training form.
    pub parameters: usize,
    /// Recorded where the count is known at this point (0 for a fresh network).
    pub training_steps: Option<u64>,
    /// The command line, for files a command writes for the user to keep.
    pub command: bool,
}

impl Provenance<'_> {
    /// `network` followed by the provenance entries.
    pub fn record(&self, network: Metadata) -> Metadata {
        let mut m = network.with("graph", self.graph).with("parameters", self.parameters);
        if let Some(steps) = self.training_steps {
            m.push("training_steps", steps);
        }
        m.push("srgraph_version", env!("CARGO_PKG_VERSION"));
        if self.command {
            m.push("command", std::env::args().collect::<Vec<_>>().join(" "));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_parses_by_key() {
        let m = Metadata::new().with("scale", 4).with("blocks", "8").with("scale", 2);
        assert_eq!(
            m.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["scale", "blocks", "scale"]
        );
        assert_eq!(m.get("scale"), Some("4"));
        assert_eq!(m.parse::<usize>("blocks").unwrap(), Some(8));
        assert_eq!(m.parse::<usize>("filters").unwrap(), None);
        let bad = Metadata::new().with("scale", "four");
        let e = format!("{:#}", bad.parse::<usize>("scale").unwrap_err());
        assert_eq!(e, "its metadata has scale = 'four', which is not a valid value");
    }

    #[test]
    fn provenance_follows_the_network() {
        let network = Metadata::new().with("architecture", "wdsr-b");
        let m = Provenance {
            graph: "inference",
            parameters: 12,
            training_steps: Some(0),
            command: false,
        }
        .record(network);
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "architecture",
                "graph",
                "parameters",
                "training_steps",
                "srgraph_version"
            ]
        );
    }
}
