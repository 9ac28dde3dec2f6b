//! Named configurations, one small TOML file each in `graphs/`, embedded at build time.

use super::{Arch, ModelConfig, Norm};
use crate::ir::ShuffleMode;
use anyhow::{bail, Context, Result};
use serde::Deserialize;

include!(concat!(env!("OUT_DIR"), "/presets.rs"));

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub arch: String,
    pub scale: Option<usize>,
    pub blocks: Option<usize>,
    pub filters: Option<usize>,
    pub expansion: Option<usize>,
    pub linear: Option<f32>,
    pub res_scale: Option<f32>,
    pub norm: Option<String>,
    pub shuffle: Option<String>,
}

impl Preset {
    /// The preset applied over its architecture's defaults.
    pub fn config(&self) -> Result<ModelConfig> {
        let arch =
            Arch::parse(&self.arch).with_context(|| format!("preset {}: unknown arch '{}'", self.name, self.arch))?;
        let mut c = ModelConfig::new(arch);
        c.scale = self.scale.unwrap_or(c.scale);
        c.blocks = self.blocks.unwrap_or(c.blocks);
        c.filters = self.filters.unwrap_or(c.filters);
        c.expansion = self.expansion.unwrap_or(c.expansion);
        c.linear = self.linear.unwrap_or(c.linear);
        c.res_scale = self.res_scale.unwrap_or(c.res_scale);
        if let Some(n) = &self.norm {
            c.norm = match n.as_str() {
                "weight" => Norm::Weight,
                "none" => Norm::None,
                "batch" => Norm::Batch,
                other => bail!("preset {}: unknown norm '{other}'", self.name),
            };
        }
        if let Some(s) = &self.shuffle {
            c.shuffle = match s.as_str() {
                "crd" => ShuffleMode::Crd,
                "dcr" => ShuffleMode::Dcr,
                other => bail!("preset {}: unknown shuffle '{other}'", self.name),
            };
        }
        Ok(c)
    }
}

pub fn presets() -> Result<Vec<Preset>> {
    PRESET_FILES
        .iter()
        .map(|(name, text)| {
            let mut p: Preset = toml::from_str(text).with_context(|| format!("graphs/{name}.toml does not parse"))?;
            p.name = name.to_string();
            Ok(p)
        })
        .collect()
}

pub fn preset(name: &str) -> Result<Option<Preset>> {
    Ok(presets()?.into_iter().find(|p| p.name == name))
}
