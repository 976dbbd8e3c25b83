//! The compiled-version cache: each version's templates and output rules, compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::config::COMPILED_CACHE_SIZE;
use crate::error::Result;
use crate::ids::PromptId;
use crate::prompt::PromptVersion;
use crate::template::{CompiledPrompt, TemplateLimits};
use crate::validation::CompiledRules;

/// A version compiled once: templates and output rules.
#[derive(Debug)]
pub(crate) struct CompiledVersion {
    pub(crate) version: PromptVersion,
    pub(crate) prompt: CompiledPrompt,
    pub(crate) rules: CompiledRules,
}

impl CompiledVersion {
    /// Compiles `version`'s templates, input validator and output rules.
    pub(crate) fn compile(version: &PromptVersion, limits: &TemplateLimits) -> Result<Self> {
        Ok(Self {
            prompt: CompiledPrompt::compile(version, limits)?,
            rules: CompiledRules::compile(&version.validations)?,
            version: version.clone(),
        })
    }
}

/// Compiled versions by prompt and version number, at most [`COMPILED_CACHE_SIZE`].
#[derive(Debug, Default)]
pub(crate) struct VersionCache {
    entries: Mutex<HashMap<(PromptId, u32), Arc<CompiledVersion>>>,
}

impl VersionCache {
    pub(crate) fn get(&self, key: (PromptId, u32)) -> Option<Arc<CompiledVersion>> {
        self.entries.lock().ok().and_then(|c| c.get(&key).cloned())
    }

    /// The cached compilation of `version`, compiling (and caching) it on a miss.
    pub(crate) fn get_or_compile(
        &self,
        version: &PromptVersion,
        limits: &TemplateLimits,
    ) -> Result<Arc<CompiledVersion>> {
        let key = (version.prompt_id, version.version);
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let compiled = Arc::new(CompiledVersion::compile(version, limits)?);
        if let Ok(mut cache) = self.entries.lock() {
            if cache.len() >= COMPILED_CACHE_SIZE {
                // Versions are immutable, so any entry may go; drop an arbitrary one.
                if let Some(k) = cache.keys().next().copied() {
                    cache.remove(&k);
                }
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }
}
