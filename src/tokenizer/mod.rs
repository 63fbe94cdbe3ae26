//! The tokenizer: HF `tokenizer.json`, or GPT-2's original `encoder.json` + `vocab.bpe`
//! (the same pair is also spelled `vocab.json` + `merges.txt`), built into the same byte-level BPE
//! that HF's `GPT2TokenizerFast` is.

mod bpe;
mod json;
mod model;

use thiserror::Error;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerImpl,
};

use bpe::{Bpe, Options};
use model::Model;

/// `tokenizers`' pipeline (normalizer, pre-tokenizer, added tokens, decoder…) around our model.
type Inner = TokenizerImpl<Model, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("{file} is not a valid tokenizer file: {message}")]
    Parse { file: &'static str, message: String },
    #[error("the tokenizer has ids up to {max_id}, beyond the model's vocab_size {vocab_size}")]
    VocabTooLarge { max_id: u32, vocab_size: usize },
    #[error("could not encode the text: {0}")]
    Encode(String),
    #[error("could not decode the ids: {0}")]
    Decode(String),
}

/// GPT-2's end-of-text marker, present in `encoder.json` as id 50256.
pub const GPT2_END_OF_TEXT: &str = "<|endoftext|>";

pub struct Tokenizer {
    inner: Inner,
    /// One past the largest id it can produce, found once when it is built ([`Tokenizer::id_bound`]).
    id_bound: u32,
}

impl Tokenizer {
    /// A `tokenizer.json` in HF `tokenizers` format.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let (inner, model_bound) =
            json::read(bytes).map_err(|message| TokenizerError::Parse { file: "tokenizer.json", message })?;
        Ok(Tokenizer::new(inner, model_bound))
    }

    /// The tokenizer as `tokenizer.json` text (whatever files it was loaded from).
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner
            .to_string(false)
            .map_err(|e| TokenizerError::Parse { file: "tokenizer.json", message: e.to_string() })
    }

    /// GPT-2's original pair: `encoder.json` (token → id) and `vocab.bpe` (one merge per line,
    /// after a `#version` line).
    pub fn from_gpt2_files(encoder_json: &[u8], vocab_bpe: &str) -> Result<Self, TokenizerError> {
        let vocab = serde_json::from_slice::<json::VocabFile>(encoder_json)
            .map_err(|e| TokenizerError::Parse { file: "encoder.json", message: e.to_string() })?
            .0;
        let mut merges = Vec::new();
        for (n, line) in vocab_bpe.lines().enumerate() {
            if line.starts_with("#version") || line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => merges.push((a, b)),
                _ => {
                    return Err(TokenizerError::Parse {
                        file: "vocab.bpe",
                        message: format!("line {}: expected two tokens separated by one space", n + 1),
                    });
                }
            }
        }
        let bad_merges = |message| TokenizerError::Parse { file: "vocab.bpe", message };
        json::check_merges(vocab.iter().map(|(t, _)| t), 0, merges.iter().copied()).map_err(bad_merges)?;
        let has_eot = vocab.iter().any(|(t, _)| t == GPT2_END_OF_TEXT);
        let model_bound = vocab.id_bound();
        let bpe = Bpe::new(vocab, merges, Options::default()).map_err(bad_merges)?;
        let mut inner = Inner::new(Model::Bpe(bpe));
        // The same pipeline as HF's GPT2TokenizerFast: byte-level pre-tokenizer with GPT-2's
        // regex and no prefix space, byte-level decoder.
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevel::new(false, true, true)));
        if has_eot {
            inner
                .add_special_tokens([AddedToken::from(GPT2_END_OF_TEXT, true)])
                .map_err(|e| TokenizerError::Parse { file: "encoder.json", message: e.to_string() })?;
        }
        Ok(Tokenizer::new(inner, Some(model_bound)))
    }

    /// `inner`, with its model's id bound where the reader found it (a BPE's, from the vocabulary
    /// it read) — else taken from a copy of the model's vocabulary (`tokenizers` lends none
    /// without copying it: for a 150 k vocabulary 9 MB more at the load's peak).
    fn new(inner: Inner, model_bound: Option<u32>) -> Self {
        let model =
            model_bound.unwrap_or_else(|| json::vocab_bound(tokenizers::Model::get_vocab(inner.get_model()).values()));
        let added = json::vocab_bound(inner.get_added_tokens_decoder().keys());
        Tokenizer { inner, id_bound: model.max(added) }
    }

    /// One past the largest id the tokenizer can produce (its added tokens included).
    pub fn id_bound(&self) -> u32 {
        self.id_bound
    }

    /// Fails when the tokenizer can emit ids the model has no embedding for.
    pub fn check_fits(&self, vocab_size: usize) -> Result<(), TokenizerError> {
        let bound = self.id_bound();
        if bound as usize > vocab_size {
            return Err(TokenizerError::VocabTooLarge { max_id: bound - 1, vocab_size });
        }
        Ok(())
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self.inner.encode(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text; bytes that do not form UTF-8 come out as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, false).map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token's text as the page shows it: its decoded form (`" man"`, not `"Ġman"`). A
    /// byte-level token holding part of a character (the first two bytes of 你) shows those
    /// bytes as `\xE4\xBD` instead of U+FFFD.
    pub fn token_text(&self, id: u32) -> Result<String, TokenizerError> {
        let text = self.decode(&[id])?;
        if !text.contains('\u{FFFD}') {
            return Ok(text);
        }
        let Some(bytes) = self.inner.id_to_token(id).and_then(|t| byte_level_bytes(&t)) else { return Ok(text) };
        let mut out = String::new();
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02X}"));
            }
        }
        Ok(out)
    }
}

/// The bytes behind a byte-level BPE token's characters (GPT-2's byte ↔ character table:
/// printable bytes stand for themselves, the other 68 are shifted to U+0100…); `None` when a
/// character is outside the table (not a byte-level token).
fn byte_level_bytes(token: &str) -> Option<Vec<u8>> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let shifted: Vec<u32> = (0..256).filter(|&b| !printable(b)).collect();
    token
        .chars()
        .map(|c| {
            let c = c as u32;
            if printable(c) {
                Some(c as u8)
            } else {
                c.checked_sub(256).and_then(|i| shifted.get(i as usize)).map(|&b| b as u8)
            }
        })
        .collect()
}

/// Turns a stream of ids into text pieces that never end inside a UTF-8 character.
///
/// Byte-level BPE splits a Chinese character or an emoji across tokens; decoding such a prefix
/// alone yields U+FFFD. The decoder decodes a short window of recent ids and holds back any
/// trailing U+FFFD until later ids complete the character, so a split that completes is never
/// shown as U+FFFD. The window starts one clean segment back, as HF's `DecodeStream` does, so
/// decoders that look at the previous token (prefix spaces, `##` pieces) decode it in context.
/// `finish` flushes what is left, lossily.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// The window starts here; `ids[context..start]` is the previous segment, already emitted.
    context: usize,
    /// First id of the segment being emitted.
    start: usize,
    /// Bytes of the current segment's text already emitted (when a character is pending).
    emitted: usize,
}

/// A segment that never decodes cleanly (invalid bytes) is flushed after this many ids.
const MAX_PENDING_IDS: usize = 64;

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one id; returns the new text it completes, if any.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let (tail, clean) = self.segment_text(tok)?;
        let done = self.emitted;
        if clean || self.ids.len() - self.start >= MAX_PENDING_IDS {
            // The segment is complete (or hopeless): emit all of it and start the next one.
            self.context = self.start;
            self.start = self.ids.len();
            self.emitted = 0;
            let out = tail.get(done..).unwrap_or_default();
            return Ok((!out.is_empty()).then(|| out.to_string()));
        }
        // Emit up to the pending character, hold the U+FFFD tail back.
        let stable = tail.trim_end_matches('\u{FFFD}');
        let out = stable.get(done..).unwrap_or_default();
        self.emitted = done.max(stable.len());
        Ok((!out.is_empty()).then(|| out.to_string()))
    }

    /// Emits whatever is still held back (an incomplete character comes out as U+FFFD).
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<Option<String>, TokenizerError> {
        if self.start == self.ids.len() {
            return Ok(None);
        }
        let (tail, _) = self.segment_text(tok)?;
        let out = tail.get(self.emitted..).unwrap_or_default().to_string();
        self.context = self.start;
        self.start = self.ids.len();
        self.emitted = 0;
        Ok((!out.is_empty()).then_some(out))
    }

    /// The current segment's text (decoded after its context) and whether it ends cleanly.
    fn segment_text(&self, tok: &Tokenizer) -> Result<(String, bool), TokenizerError> {
        let context = tok.decode(&self.ids[self.context..self.start])?;
        let window = tok.decode(&self.ids[self.context..])?;
        let tail = window.get(context.len()..).unwrap_or_default().to_string();
        let clean = !tail.ends_with('\u{FFFD}');
        Ok((tail, clean))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_bound_counts_the_largest_id_of_the_vocabulary_and_of_the_added_tokens() {
        // A sparse BPE vocabulary: the bound is past its largest id, not its count.
        let bpe = br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 9}, "merges": []}}"#;
        assert_eq!(Tokenizer::from_json(bpe).unwrap().id_bound(), 10);
        // An added token the vocabulary lacks takes the next free id (as in `tokenizers`).
        let added = br#"{"version": "1.0", "added_tokens": [{"id": 2, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}"#;
        assert_eq!(Tokenizer::from_json(added).unwrap().id_bound(), 3);
        // A model this reader does not build (WordLevel): its vocabulary asked of `tokenizers`.
        let word_level = br#"{"version": "1.0", "model": {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 6},
            "unk_token": "[UNK]"}}"#;
        assert_eq!(Tokenizer::from_json(word_level).unwrap().id_bound(), 7);
        // GPT-2's files: 50256 ids, then <|endoftext|> as its own.
        let gpt2 = Tokenizer::from_gpt2_files(br#"{"a": 0, "b": 1, "<|endoftext|>": 2}"#, "#version: 0.2\n").unwrap();
        assert_eq!(gpt2.id_bound(), 3);
    }

    #[test]
    fn a_merge_longer_than_every_token_is_an_error_not_a_panic() {
        // The third crash `cargo xtask fuzz` found: `tokenizers` sliced past its buffer.
        for merges in [r#"[["ab", "cd"]]"#, r#"["ab cd"]"#] {
            let json = format!(
                r#"{{"version": "1.0", "model": {{"type": "BPE", "vocab": {{"ab": 0, "cd": 1, "a": 2}},
                "merges": {merges}}}}}"#
            );
            let err = Tokenizer::from_json(json.as_bytes()).err().expect("an error");
            assert!(err.to_string().contains("longer than any in the vocabulary"), "{err}");
        }
        // A prefix longer than a merge's second half (WordPiece-style `##`).
        let json = br###"{"version": "1.0", "model": {"type": "BPE", "vocab": {"ab": 0, "c": 1, "abc": 2},
            "merges": [["ab", "c"]], "continuing_subword_prefix": "##"}}"###;
        assert!(Tokenizer::from_json(json).is_err());
        let err =
            Tokenizer::from_gpt2_files(br#"{"ab": 0, "cd": 1}"#, "#version: 0.2\nab cd\n").err().expect("an error");
        assert!(err.to_string().contains("longer than any in the vocabulary"), "{err}");
    }

    #[test]
    fn an_untyped_bpe_with_a_duplicate_key_is_an_error_not_a_panic() {
        // `tokenizers` reads an untyped model with merges as a BPE, and a repeated key as its
        // last value: this merge, longer than every token, panicked in its builder.
        let json = br#"{"version": "1.0", "model": {"vocab": {"zz": 0}, "vocab": {"ab": 0, "cd": 1, "a": 2},
            "merges": [["ab", "cd"]]}}"#;
        assert!(Tokenizer::from_json(json).is_err());
        // Without the repeat it is read here, and refused for its merge.
        let json = br#"{"version": "1.0", "model": {"vocab": {"ab": 0, "cd": 1, "a": 2}, "merges": [["ab", "cd"]]}}"#;
        let err = Tokenizer::from_json(json).err().expect("an error");
        assert!(err.to_string().contains("longer than any in the vocabulary"), "{err}");
    }

    #[test]
    fn bytes_that_are_not_utf8_or_a_lone_surrogate_are_an_error_not_a_panic() {
        // The second crash `cargo xtask fuzz` found: one byte of a key replaced by 0x94.
        let mut bad_byte = br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true}}"#
            .to_vec();
        let at = bad_byte.windows(6).position(|w| w == b"prefix").unwrap();
        bad_byte[at] = 0x94;
        let surrogate = br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "x": "\udc00"}}"#;
        for broken in [&bad_byte[..], surrogate] {
            let err = Tokenizer::from_json(broken).err().expect("an error");
            assert!(err.to_string().contains("tokenizer.json"), "{err}");
        }
        // A valid file still loads.
        let ok = br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#;
        assert!(Tokenizer::from_json(ok).is_ok());
    }

    #[test]
    fn a_tokenizer_json_cut_inside_a_component_is_an_error_not_a_panic() {
        // The shape of the first crash `cargo xtask fuzz` found: the decoder's object breaks
        // off mid-key and the vocabulary follows.
        let broken = br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "u  "a": 502, "b": 503}}"#;
        let err = Tokenizer::from_json(broken).err().expect("an error");
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
    }
}
