//! Reading a `tokenizer.json`: what `tokenizers`' own `Tokenizer::from_bytes` does, with a BPE
//! model built here, in one pass, with no word cache.
//!
//! Why not `from_bytes`: `tokenizers` 0.23 keeps BPE's word cache in a per-thread map keyed by
//! tokenizer that nothing empties when a tokenizer is dropped, so every model a process (or the
//! page's worker) loaded kept up to 10,000 words per thread for good (found by `cargo xtask
//! fuzz`: ~57,000 tokenizers into a run, that map doubled to one allocation of 9.6 MB). A file's
//! BPE cannot be told to go without it. A chat prompt is a few thousand words, merged in
//! microseconds each: the cache is not worth that. Reading the model here also skips the copy of
//! it `tokenizers` makes (the whole model as a `serde_json::Value`), the load's largest transient.
//!
//! The other parts (normalizer, pre-tokenizer, post-processor, decoder, added tokens, truncation,
//! padding) are `tokenizers`' own types, put together as its reader does; a model other than BPE
//! (Unigram, WordPiece, WordLevel) is `tokenizers`' own reader's.

use serde::Deserialize;
use serde_json::value::RawValue;
use tokenizers::models::ModelWrapper;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PaddingParams, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
    TokenizerBuilder, TruncationParams,
};

/// The parts of a `tokenizer.json`, as `tokenizers`' reader takes them (unknown keys ignored).
#[derive(Deserialize)]
struct TokenizerFile<'a> {
    version: Option<String>,
    truncation: Option<TruncationParams>,
    padding: Option<PaddingParams>,
    /// Each with the id the file gives it, which is not read: as in `tokenizers`, a token's id
    /// is the model's for its text, or the next free one.
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(borrow)]
    model: &'a RawValue,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
}

/// A BPE model's fields (`"type": "BPE"`, or no type: `tokenizers` tries BPE first).
#[derive(Deserialize)]
struct BpeFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: Vocab,
    merges: Vec<Merge>,
    dropout: Option<f32>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    fuse_unk: Option<bool>,
    byte_fallback: Option<bool>,
    ignore_merges: Option<bool>,
}

/// A merge as `"a b"` (older files) or `["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Merge {
    Joined(String),
    Pair(String, String),
}

/// Just the model's `type`, and whether it has merges, to tell BPE from the others.
#[derive(Deserialize)]
struct ModelType {
    #[serde(rename = "type")]
    kind: Option<String>,
    merges: Option<serde::de::IgnoredAny>,
}

/// One past the largest of `ids` (0 for none).
pub fn vocab_bound<'a>(ids: impl Iterator<Item = &'a u32>) -> u32 {
    ids.map(|&id| id.saturating_add(1)).max().unwrap_or(0)
}

/// The tokenizer a `tokenizer.json` describes, with its model's id bound where the model is a
/// BPE read here (else None); the message says what is wrong with it.
pub fn read(bytes: &[u8]) -> Result<(Tokenizer, Option<u32>), String> {
    // Valid JSON first, every string decoded: `tokenizers` 0.23 panics (`expect("Helper")`) on a
    // component that is not valid JSON — a cut object, bytes that are not UTF-8, a lone surrogate
    // escape — rather than returning an error (found by `cargo xtask fuzz`).
    serde_json::from_slice::<ValidJson>(bytes).map_err(|e| e.to_string())?;
    let file: TokenizerFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some(v) = file.version.as_deref().filter(|v| *v != "1.0") {
        return Err(format!("unknown tokenizer version {v:?}"));
    }
    let model_type = serde_json::from_str::<ModelType>(file.model.get()).map_err(|e| format!("model: {e}"))?;
    let mut model_bound = None;
    let model: ModelWrapper = match (model_type.kind.as_deref(), model_type.merges.is_some()) {
        // A BPE, typed or (as `tokenizers` reads an untyped model with merges first) not: read
        // here, never by `tokenizers`, whose BPE builder panics on merges `check_merges` refuses
        // (an untyped model with a duplicate key once slipped past this reader to it).
        (Some("BPE"), _) | (None, true) => {
            let f: BpeFile = serde_json::from_str(file.model.get()).map_err(|e| format!("model: {e}"))?;
            model_bound = Some(vocab_bound(f.vocab.values()));
            bpe(f)?.into()
        }
        // Unigram, WordPiece, WordLevel (or an untyped model without merges: one of those).
        _ => serde_json::from_str(file.model.get()).map_err(|e| format!("model: {e}"))?,
    };
    let mut tokenizer: Tokenizer = TokenizerBuilder::new()
        .with_model(model)
        .with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder)
        .with_truncation(file.truncation)
        .with_padding(file.padding)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    tokenizer.add_tokens(file.added_tokens).map_err(|e| e.to_string())?;
    Ok((tokenizer, model_bound))
}

/// The BPE model of `f`, with no word cache.
fn bpe(f: BpeFile) -> Result<BPE, String> {
    if f.kind.as_deref().is_some_and(|k| k != "BPE") {
        return Err(format!("model: type {:?} is not BPE", f.kind));
    }
    let mut merges = Vec::with_capacity(f.merges.len());
    // Older files write a merge as one string; `tokenizers` skips a `#version` line among them.
    let joined = f.merges.into_iter().filter(|m| !matches!(m, Merge::Joined(s) if s.starts_with("#version")));
    for (rank, merge) in joined.enumerate() {
        merges.push(match merge {
            Merge::Pair(a, b) => (a, b),
            Merge::Joined(ab) => match ab.split(' ').collect::<Vec<_>>()[..] {
                [a, b] => (a.to_string(), b.to_string()),
                _ => return Err(format!("merge {}: {ab:?} is not two tokens separated by one space", rank + 1)),
            },
        });
    }
    let prefix = f.continuing_subword_prefix.as_deref().map_or(0, str::len);
    check_merges(f.vocab.keys().map(String::as_str), prefix, merges.iter().map(|(a, b)| (a.as_str(), b.as_str())))?;
    let mut b = BPE::builder()
        .vocab_and_merges(f.vocab, merges)
        .cache_capacity(0)
        .fuse_unk(f.fuse_unk.unwrap_or(false))
        .byte_fallback(f.byte_fallback.unwrap_or(false))
        .ignore_merges(f.ignore_merges.unwrap_or(false));
    if let Some(p) = f.dropout {
        b = b.dropout(p);
    }
    if let Some(t) = f.unk_token {
        b = b.unk_token(t);
    }
    if let Some(p) = f.continuing_subword_prefix {
        b = b.continuing_subword_prefix(p);
    }
    if let Some(s) = f.end_of_word_suffix {
        b = b.end_of_word_suffix(s);
    }
    b.build().map_err(|e| e.to_string())
}

/// `tokenizers` 0.23's BPE builder puts each merge's two halves together in a buffer as long as
/// the longest vocabulary entry, and panics (a slice out of range) when they are longer together,
/// or when the second is shorter than the continuing-subword prefix it strips (found by `cargo
/// xtask fuzz`). Such a merge makes a token no entry of the vocabulary can be: refused here, as
/// `tokenizers` refuses a merge whose token is missing.
pub(super) fn check_merges<'a>(
    vocab: impl Iterator<Item = &'a str>,
    prefix: usize,
    mut merges: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    let longest = vocab.map(str::len).max().unwrap_or(0);
    match merges.find(|(a, b)| b.len() < prefix || a.len() + b.len() - prefix > longest) {
        Some((a, b)) => Err(format!("the merge {a:?} + {b:?} makes a token longer than any in the vocabulary")),
        None => Ok(()),
    }
}

/// Any JSON value, read to the end with every string and key decoded (UTF-8 checked, `\u`
/// escapes resolved), nothing kept. (`serde::de::IgnoredAny` skips strings undecoded.)
struct ValidJson;

impl<'de> serde::Deserialize<'de> for ValidJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValidJson).map(|()| ValidJson)
    }
}

impl<'de> serde::de::Visitor<'de> for ValidJson {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<ValidJson>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<ValidJson, ValidJson>()?.is_some() {}
        Ok(())
    }
}
