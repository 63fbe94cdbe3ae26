//! Reading a `tokenizer.json`: what `tokenizers`' own `Tokenizer::from_bytes` does, with a BPE
//! model that is ours ([`Bpe`], compact, no word cache), read in one pass.
//!
//! Why not `from_bytes`: `tokenizers` 0.23 keeps BPE's word cache in a per-thread map keyed by
//! tokenizer that nothing empties when a tokenizer is dropped, so every model a process (or the
//! page's worker) loaded kept up to 10,000 words per thread for good (found by `cargo xtask
//! fuzz`: ~57,000 tokenizers into a run, that map doubled to one allocation of 9.6 MB). A chat
//! prompt is a few thousand words, merged in microseconds each: the cache is not worth that.
//! Its BPE also holds each token as two `String`s in hash maps (see `bpe.rs`). Reading the model
//! here skips, besides, the copy of it `tokenizers` makes (the whole model as a
//! `serde_json::Value`): the vocabulary and merges go straight into [`Bpe`]'s buffers.
//!
//! The other parts (normalizer, pre-tokenizer, post-processor, decoder, added tokens, truncation,
//! padding) are `tokenizers`' own types, put together as its reader does; a model other than BPE
//! (Unigram, WordPiece, WordLevel) is `tokenizers`' own reader's.

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PaddingParams, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder, TruncationParams,
};

use super::Inner;
use super::bpe::{Bpe, Options, VocabBuilder};
use super::model::Model;

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
    vocab: VocabFile,
    merges: MergesFile,
    dropout: Option<f32>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    fuse_unk: Option<bool>,
    byte_fallback: Option<bool>,
    ignore_merges: Option<bool>,
}

/// Just the model's `type`, and whether it has merges, to tell BPE from the others.
#[derive(Deserialize)]
struct ModelType {
    #[serde(rename = "type")]
    kind: Option<String>,
    merges: Option<IgnoredAny>,
}

/// One past the largest of `ids` (0 for none).
pub fn vocab_bound<'a>(ids: impl Iterator<Item = &'a u32>) -> u32 {
    ids.map(|&id| id.saturating_add(1)).max().unwrap_or(0)
}

/// The tokenizer a `tokenizer.json` describes, with its model's id bound where the model is a
/// BPE read here (else None); the message says what is wrong with it.
pub fn read(bytes: &[u8]) -> Result<(Inner, Option<u32>), String> {
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
    let model = match (model_type.kind.as_deref(), model_type.merges.is_some()) {
        // A BPE, typed or (as `tokenizers` reads an untyped model with merges first) not: read
        // here, never by `tokenizers`' reader, whose BPE builder panics on merges `check_merges`
        // refuses (an untyped model with a duplicate key once slipped past this reader to it).
        (Some("BPE"), _) | (None, true) => {
            let f: BpeFile = serde_json::from_str(file.model.get()).map_err(|e| format!("model: {e}"))?;
            model_bound = Some(f.vocab.0.id_bound());
            bpe(f)?
        }
        // Unigram, WordPiece, WordLevel (or an untyped model without merges: one of those).
        _ => Model::Other(serde_json::from_str(file.model.get()).map_err(|e| format!("model: {e}"))?),
    };
    let mut tokenizer: Inner = TokenizerBuilder::new()
        .with_model(model)
        .with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder)
        .with_truncation(file.truncation)
        .with_padding(file.padding)
        .build()
        .map_err(|e| e.to_string())?;
    tokenizer.add_tokens(file.added_tokens).map_err(|e| e.to_string())?;
    Ok((tokenizer, model_bound))
}

/// The BPE model of `f`: ours, or with dropout `tokenizers`' own.
fn bpe(f: BpeFile) -> Result<Model, String> {
    if f.kind.as_deref().is_some_and(|k| k != "BPE") {
        return Err(format!("model: type {:?} is not BPE", f.kind));
    }
    let prefix = f.continuing_subword_prefix.as_deref().map_or(0, str::len);
    check_merges(f.vocab.0.iter().map(|(t, _)| t), prefix, f.merges.pairs())?;
    let options = Options {
        unk_token: f.unk_token,
        continuing_subword_prefix: f.continuing_subword_prefix,
        end_of_word_suffix: f.end_of_word_suffix,
        fuse_unk: f.fuse_unk.unwrap_or(false),
        byte_fallback: f.byte_fallback.unwrap_or(false),
        ignore_merges: f.ignore_merges.unwrap_or(false),
    };
    match f.dropout {
        Some(p) if p != 0.0 => dropout_bpe(&f.vocab.0, &f.merges, options, p).map(|b| Model::Other(b.into())),
        _ => Ok(Model::Bpe(Bpe::new(f.vocab.0, f.merges.pairs(), options)?)),
    }
}

/// `tokenizers`' BPE, for a file that asks for dropout (random merges while encoding).
fn dropout_bpe(vocab: &VocabBuilder, merges: &MergesFile, o: Options, p: f32) -> Result<BPE, String> {
    let vocab: Vocab = vocab.iter().map(|(t, id)| (t.to_string(), id)).collect();
    let merges = merges.pairs().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let mut b = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .cache_capacity(0)
        .dropout(p)
        .fuse_unk(o.fuse_unk)
        .byte_fallback(o.byte_fallback)
        .ignore_merges(o.ignore_merges);
    if let Some(t) = o.unk_token {
        b = b.unk_token(t);
    }
    if let Some(p) = o.continuing_subword_prefix {
        b = b.continuing_subword_prefix(p);
    }
    if let Some(s) = o.end_of_word_suffix {
        b = b.end_of_word_suffix(s);
    }
    b.build().map_err(|e| e.to_string())
}

/// A BPE vocabulary (`{token: id}`) read straight into a [`VocabBuilder`], each key decoded
/// into one reused buffer: no `String` a token, even for a moment.
pub(super) struct VocabFile(pub VocabBuilder);

impl<'de> Deserialize<'de> for VocabFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(VocabVisitor)
    }
}

struct VocabVisitor;

impl<'de> Visitor<'de> for VocabVisitor {
    type Value = VocabFile;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of tokens to ids")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VocabFile, A::Error> {
        let mut vocab = VocabBuilder::default();
        let mut key = String::new();
        while map.next_key_seed(Text(&mut key))?.is_some() {
            let id: u32 = map.next_value()?;
            vocab.push(&key, id).map_err(A::Error::custom)?;
        }
        Ok(VocabFile(vocab))
    }
}

/// The merges, in rank order, their halves' text back to back in one buffer. A merge is
/// `["a", "b"]`, or `"a b"` in older files, where a `#version` line is skipped as
/// `tokenizers` skips it.
#[derive(Default)]
struct MergesFile {
    text: String,
    /// Each merge's (start, middle, end) in `text`.
    spans: Vec<(u32, u32, u32)>,
}

impl MergesFile {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|&(s, m, e)| (&self.text[s as usize..m as usize], &self.text[m as usize..e as usize]))
    }

    fn push(&mut self, a: &str, b: &str) -> Result<(), String> {
        let offset = |n: usize| u32::try_from(n).map_err(|_| "the merges' text passes 4 GB".to_string());
        let start = offset(self.text.len())?;
        self.text.push_str(a);
        let middle = offset(self.text.len())?;
        self.text.push_str(b);
        self.spans.push((start, middle, offset(self.text.len())?));
        Ok(())
    }
}

impl<'de> Deserialize<'de> for MergesFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(MergesVisitor)
    }
}

struct MergesVisitor;

impl<'de> Visitor<'de> for MergesVisitor {
    type Value = MergesFile;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of merges")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MergesFile, A::Error> {
        let mut merges = MergesFile::default();
        while seq.next_element_seed(MergeSeed(&mut merges))?.is_some() {}
        merges.text.shrink_to_fit();
        Ok(merges)
    }
}

/// One merge, appended to the list.
struct MergeSeed<'a>(&'a mut MergesFile);

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MergeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(r#"a merge: ["a", "b"] or "a b""#)
    }
    fn visit_str<E: serde::de::Error>(self, ab: &str) -> Result<(), E> {
        if ab.starts_with("#version") {
            return Ok(());
        }
        match ab.split(' ').collect::<Vec<_>>()[..] {
            [a, b] => self.0.push(a, b).map_err(E::custom),
            _ => Err(E::custom(format!(
                "merge {}: {ab:?} is not two tokens separated by one space",
                self.0.spans.len() + 1
            ))),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (mut a, mut b) = (String::new(), String::new());
        let two = seq.next_element_seed(Text(&mut a))?.is_some() && seq.next_element_seed(Text(&mut b))?.is_some();
        if !two || seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(A::Error::custom(format!("merge {}: not a pair of tokens", self.0.spans.len() + 1)));
        }
        self.0.push(&a, &b).map_err(A::Error::custom)
    }
}

/// A string decoded into a buffer that is reused.
struct Text<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(s);
        Ok(())
    }
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
