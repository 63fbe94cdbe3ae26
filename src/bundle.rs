//! The model bundle: `config.json` + `model.safetensors` + a tokenizer, validated together.

use std::sync::Arc;

use thiserror::Error;

use crate::config::{ConfigError, GptConfig};
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::weights::{ModelWeights, WeightsError};

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}: no tokenizer found (expected tokenizer.json, encoder.json + vocab.bpe, or vocab.json + merges.txt)")]
    NoTokenizer(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] crate::chat_template::TemplateError),
}

/// The tokenizer files of a bundle, in one of the accepted forms.
pub enum TokenizerFiles<'a> {
    /// HF `tokenizer.json`.
    Json(&'a [u8]),
    /// GPT-2's `encoder.json` + `vocab.bpe` (or `vocab.json` + `merges.txt`).
    Gpt2 { vocab: &'a [u8], merges: &'a [u8] },
}

pub struct Bundle {
    pub config: GptConfig,
    pub weights: Arc<ModelWeights>,
    pub tokenizer: Tokenizer,
}

impl Bundle {
    /// Validates a bundle given as bytes (the browser's path: files come from fetch or a picker).
    pub fn from_parts(config: &[u8], safetensors: &[u8], tokenizer: TokenizerFiles<'_>) -> Result<Self, BundleError> {
        Self::from_parts_with(config, tokenizer, |c| ModelWeights::from_safetensors(safetensors, c))
    }

    /// [`Bundle::from_parts`] of a safetensors file given up to the model: its matrices stay
    /// where they lie in it ([`ModelWeights::from_owned_safetensors`]).
    pub fn from_owned_parts(
        config: &[u8],
        safetensors: Vec<u8>,
        tokenizer: TokenizerFiles<'_>,
    ) -> Result<Self, BundleError> {
        Self::from_parts_with(config, tokenizer, |c| ModelWeights::from_owned_safetensors(safetensors, c))
    }

    fn from_parts_with(
        config: &[u8],
        tokenizer: TokenizerFiles<'_>,
        weights: impl FnOnce(&GptConfig) -> Result<ModelWeights, crate::weights::WeightsError>,
    ) -> Result<Self, BundleError> {
        let config = GptConfig::from_json(config)?;
        let tokenizer = match tokenizer {
            TokenizerFiles::Json(json) => Tokenizer::from_json(json)?,
            TokenizerFiles::Gpt2 { vocab, merges } => gpt2_tokenizer(vocab, merges)?,
        };
        tokenizer.check_fits(config.vocab_size)?;
        let weights = weights(&config)?;
        Ok(Bundle { config, weights: Arc::new(weights), tokenizer })
    }

    /// Loads a bundle directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(dir: &std::path::Path) -> Result<Self, BundleError> {
        let config = GptConfig::from_json(&read_file(dir, "config.json")?)?;
        let tokenizer = load_tokenizer(dir)?;
        tokenizer.check_fits(config.vocab_size)?;
        let weights = ModelWeights::from_owned_safetensors(read_file(dir, "model.safetensors")?, &config)?;
        Ok(Bundle { config, weights: Arc::new(weights), tokenizer })
    }

    /// A new inference session on the CPU reference engine.
    pub fn cpu_session(&self) -> crate::cpu::CpuSession {
        crate::cpu::CpuSession::new(self.config.clone(), self.weights.clone())
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn read_file(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, BundleError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| BundleError::Io { path: path.display().to_string(), message: e.to_string() })
}

/// Loads only the tokenizer of a bundle directory: `tokenizer.json`, else `encoder.json` +
/// `vocab.bpe`, else `vocab.json` + `merges.txt`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_tokenizer(dir: &std::path::Path) -> Result<Tokenizer, BundleError> {
    if !dir.is_dir() {
        return Err(BundleError::Io { path: dir.display().to_string(), message: "not a directory".into() });
    }
    let exists = |name: &str| dir.join(name).is_file();
    if exists("tokenizer.json") {
        return Ok(Tokenizer::from_json(&read_file(dir, "tokenizer.json")?)?);
    }
    for (vocab, merges) in [("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")] {
        if exists(vocab) && exists(merges) {
            let (vocab, merges) = (read_file(dir, vocab)?, read_file(dir, merges)?);
            return Ok(gpt2_tokenizer(&vocab, &merges)?);
        }
    }
    Err(BundleError::NoTokenizer(dir.display().to_string()))
}

fn gpt2_tokenizer(vocab: &[u8], merges: &[u8]) -> Result<Tokenizer, TokenizerError> {
    let merges = std::str::from_utf8(merges)
        .map_err(|e| TokenizerError::Parse { file: "vocab.bpe", message: format!("not UTF-8: {e}") })?;
    Tokenizer::from_gpt2_files(vocab, merges)
}
