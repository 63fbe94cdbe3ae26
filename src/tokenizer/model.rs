//! The model half of the tokenizer (text pieces → ids): a BPE held compactly ([`Bpe`]), or
//! `tokenizers`' own model for the rest (Unigram, WordPiece, WordLevel, and a BPE with dropout,
//! whose random merges only `tokenizers` makes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::models::ModelWrapper;
use tokenizers::{AddedToken, Token};

use super::bpe::Bpe;

pub enum Model {
    Bpe(Bpe),
    Other(ModelWrapper),
}

impl tokenizers::Model for Model {
    type Trainer = Untrainable;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            Model::Bpe(b) => b.tokenize(sequence).map_err(Into::into),
            Model::Other(m) => m.tokenize(sequence),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Model::Bpe(b) => b.token_to_id(token),
            Model::Other(m) => m.token_to_id(token),
        }
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Model::Bpe(b) => b.id_to_token(id).map(str::to_string),
            Model::Other(m) => m.id_to_token(id),
        }
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        match self {
            Model::Bpe(b) => b.vocab().map(|(t, id)| (t.to_string(), id)).collect(),
            Model::Other(m) => m.get_vocab(),
        }
    }

    fn get_vocab_size(&self) -> usize {
        match self {
            Model::Bpe(b) => b.len(),
            Model::Other(m) => m.get_vocab_size(),
        }
    }

    /// `tokenizers`' `vocab.json` + `merges.txt` pair; wgpt writes a tokenizer whole, as
    /// `tokenizer.json` (`Tokenizer::to_json`), and never calls this.
    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        match self {
            Model::Bpe(_) => Err("wgpt writes its tokenizer as one tokenizer.json".into()),
            Model::Other(m) => m.save(folder, prefix),
        }
    }

    fn get_trainer(&self) -> Untrainable {
        Untrainable
    }
}

impl serde::Serialize for Model {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Model::Bpe(b) => b.serialize(s),
            Model::Other(m) => m.serialize(s),
        }
    }
}

/// `tokenizers` asks every model for a trainer; wgpt reads tokenizers, it does not train them.
pub struct Untrainable;

impl tokenizers::Trainer for Untrainable {
    type Model = Model;

    fn should_show_progress(&self) -> bool {
        false
    }

    fn train(&self, _: &mut Model) -> tokenizers::Result<Vec<AddedToken>> {
        Err("wgpt reads tokenizers; it does not train them".into())
    }

    fn feed<I, S, F>(&mut self, _: I, _: F) -> tokenizers::Result<()>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
        F: Fn(&str) -> tokenizers::Result<Vec<String>> + Sync,
    {
        Err("wgpt reads tokenizers; it does not train them".into())
    }
}
