//! `prepare`: text files → a byte-level BPE tokenizer → token shards with a held-out split.
//!
//! Every `.txt` file of the corpus folders is one source. Each source is cut into chunks of
//! whole paragraphs (about 2 KB); every 20th chunk goes to validation, so every source is
//! represented in both splits and no text is in both. The tokenizer is trained on the training
//! chunks only: byte-level BPE (any UTF-8 text encodes, Chinese and English alike), digits split
//! one per token (arithmetic needs them), special tokens reserved for documents and chat.
//!
//! `episodes` adds the task suite's episodic documents (`wgpt::tasks`) as one more source, a
//! given fraction of the bytes: training episodes from the training split of inputs, validation
//! episodes from the held-out split, one episode per document. This is the "bursty" data under
//! which in-context learning appears (Chan et al. 2022).
//!
//! `natural_passes` writes the natural text's training chunks that many times into `train.bin`
//! and counts every copy when the episodes fill their fraction. A run that reads the natural text
//! N times then meets N times as many distinct episodes, instead of meeting each episode N times
//! (the episode generator has no end; the natural corpora do).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder,
};

use wgpt::tasks::{self, Split};

use crate::data::{FORMAT, ShardMeta, SourceInfo};

/// `<|endoftext|>` ends every source's token stream (id 0); the chat tokens frame turns
/// (`<|im_start|>user\n…<|im_end|>`), `<|pad|>` pads batches.
pub const SPECIAL_TOKENS: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"];
pub const EOT: &str = "<|endoftext|>";

const CHUNK_BYTES: usize = 2048;
const VAL_EVERY: usize = 20;

#[derive(Debug, Error)]
pub enum PrepareError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{0}: no .txt files in this corpus folder")]
    NoFiles(PathBuf),
    #[error("the corpus holds no text (every file is empty or whitespace)")]
    Empty,
    #[error("vocab size {0} is outside 300..=65536 (256 bytes + special tokens, u16 shards)")]
    VocabSize(usize),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("--episodes {0} is outside 0..1 (the fraction of the bytes that are task episodes)")]
    EpisodeFraction(f64),
    #[error("--natural-passes {0} is outside 1..=100 (the training shard grows with each pass)")]
    NaturalPasses(usize),
    #[error("the validation split is empty: the corpus is too small ({0} chunks of ~2 KB; need at least {VAL_EVERY})")]
    TooSmall(usize),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io { path: path.to_path_buf(), source }
}

pub struct PrepareArgs {
    pub corpus: Vec<PathBuf>,
    pub out: PathBuf,
    pub vocab_size: usize,
    /// An existing tokenizer to use instead of training one.
    pub tokenizer_json: Option<String>,
    /// The fraction of all bytes that are task-suite episodes (0: none).
    pub episodes: f64,
    /// Times the natural text's training chunks are written into `train.bin` (1: once).
    pub natural_passes: usize,
}

struct Source {
    name: String,
    bytes: usize,
    train: Vec<String>,
    val: Vec<String>,
    /// Each text is a document of its own (`<|endoftext|>` after each), not a chunk of one.
    documents: bool,
    /// Times `train` is written into `train.bin`.
    passes: usize,
}

/// Reads the corpus (sorted file order, so the result is reproducible) and splits it.
fn read_sources(corpus: &[PathBuf]) -> Result<Vec<Source>, PrepareError> {
    let mut files = Vec::new();
    for dir in corpus {
        if dir.is_file() {
            files.push(dir.clone());
            continue;
        }
        let mut here: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        if here.is_empty() {
            return Err(PrepareError::NoFiles(dir.clone()));
        }
        here.sort();
        files.extend(here);
    }
    let mut sources = Vec::new();
    let mut index = 0usize;
    for path in files {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| PrepareError::NotUtf8 { path: path.clone(), offset: e.utf8_error().valid_up_to() })?;
        let text = text.replace("\r\n", "\n");
        let mut source = Source {
            name: path.display().to_string(),
            bytes: text.len(),
            train: vec![],
            val: vec![],
            documents: false,
            passes: 1,
        };
        for chunk in chunks(&text) {
            if index % VAL_EVERY == VAL_EVERY - 1 {
                source.val.push(chunk)
            } else {
                source.train.push(chunk)
            }
            index += 1;
        }
        if !source.train.is_empty() || !source.val.is_empty() {
            sources.push(source);
        }
    }
    if sources.is_empty() {
        return Err(PrepareError::Empty);
    }
    if sources.iter().all(|s| s.val.is_empty()) {
        return Err(PrepareError::TooSmall(index));
    }
    Ok(sources)
}

/// Whole paragraphs gathered up to about `CHUNK_BYTES`; blank text dropped.
fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for para in text.split("\n\n") {
        if para.trim().is_empty() {
            continue;
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(para);
        if cur.len() >= CHUNK_BYTES {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Trains the BPE tokenizer and returns its `tokenizer.json` text.
pub fn train_tokenizer<'a>(
    texts: impl Iterator<Item = &'a str> + Send,
    vocab_size: usize,
) -> Result<String, PrepareError> {
    if !(300..=65536).contains(&vocab_size) {
        return Err(PrepareError::VocabSize(vocab_size));
    }
    let tk = |e: tokenizers::Error| PrepareError::Tokenizer(e.to_string());
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect())
        .initial_alphabet(alphabet)
        .build();
    let pre = Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, false, true).into()]);
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_pre_tokenizer(Some(pre.into()))
            .with_post_processor(Some(ByteLevel::new(false, false, true).into()))
            .with_decoder(Some(ByteLevelDecoder::default().into()))
            .build()
            .map_err(tk)?;
    tokenizer.train(&mut trainer, texts).map_err(tk)?;
    // `train` also registers the trainer's special tokens as added tokens.
    let tokenizer: tokenizers::Tokenizer = tokenizer.into();
    tokenizer.to_string(true).map_err(tk)
}

fn encode(
    tok: &wgpt::tokenizer::Tokenizer,
    texts: &[String],
    eot: u32,
    eot_each: bool,
    out: &mut Vec<u8>,
) -> Result<usize, PrepareError> {
    let mut n = 0;
    for (i, t) in texts.iter().enumerate() {
        let mut ids = tok.encode(t).map_err(|e| PrepareError::Tokenizer(e.to_string()))?;
        if eot_each || i + 1 == texts.len() {
            ids.push(eot);
        }
        n += ids.len();
        for id in ids {
            out.extend_from_slice(&(id as u16).to_le_bytes());
        }
    }
    Ok(n)
}

/// Episodes until they are `fraction` of all bytes, in each split.
fn episode_source(natural: &[Source], fraction: f64) -> Source {
    let goal = |bytes: usize| (bytes as f64 * fraction / (1.0 - fraction)) as usize;
    let fill = |goal: usize, doc: &dyn Fn(u64) -> String| {
        let (mut out, mut bytes) = (Vec::new(), 0);
        while bytes < goal {
            let d = doc(out.len() as u64);
            bytes += d.len();
            out.push(d);
        }
        out
    };
    let train_bytes = natural.iter().map(|s| s.passes * s.train.iter().map(String::len).sum::<usize>()).sum();
    let val_bytes = natural.iter().flat_map(|s| &s.val).map(String::len).sum();
    let train = fill(goal(train_bytes), &|i| tasks::document(Split::Train, i).document());
    let val = fill(goal(val_bytes), &|i| tasks::document(Split::Eval, i).document());
    let bytes = train.iter().chain(&val).map(String::len).sum();
    Source {
        name: format!("task-suite episodes ({} train, {} val)", train.len(), val.len()),
        bytes,
        train,
        val,
        documents: true,
        passes: 1,
    }
}

/// Runs `prepare`; returns the shard description it wrote.
pub fn prepare(args: &PrepareArgs) -> Result<ShardMeta, PrepareError> {
    if !(0.0..1.0).contains(&args.episodes) {
        return Err(PrepareError::EpisodeFraction(args.episodes));
    }
    if !(1..=100).contains(&args.natural_passes) {
        return Err(PrepareError::NaturalPasses(args.natural_passes));
    }
    let mut sources = read_sources(&args.corpus)?;
    for s in &mut sources {
        s.passes = args.natural_passes;
    }
    if args.episodes > 0.0 {
        sources.push(episode_source(&sources, args.episodes));
    }
    let json = match &args.tokenizer_json {
        Some(json) => json.clone(),
        None => train_tokenizer(sources.iter().flat_map(|s| s.train.iter().map(String::as_str)), args.vocab_size)?,
    };
    let tok =
        wgpt::tokenizer::Tokenizer::from_json(json.as_bytes()).map_err(|e| PrepareError::Tokenizer(e.to_string()))?;
    let eot = tok.token_to_id(EOT).ok_or_else(|| PrepareError::Tokenizer("no <|endoftext|> token".into()))?;
    let vocab_size = tok.id_bound() as usize;
    if vocab_size > 1 << 16 {
        return Err(PrepareError::VocabSize(vocab_size));
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let mut infos = Vec::new();
    for s in &sources {
        let start = train.len();
        let once = encode(&tok, &s.train, eot, s.documents, &mut train)?;
        for _ in 1..s.passes {
            train.extend_from_within(start..start + 2 * once);
        }
        let val_tokens = if s.val.is_empty() { 0 } else { encode(&tok, &s.val, eot, s.documents, &mut val)? };
        let (file, bytes, passes) = (s.name.clone(), s.bytes, s.passes);
        infos.push(SourceInfo { file, bytes, train_tokens: once * passes, val_tokens, passes });
    }
    let meta = ShardMeta {
        format: FORMAT.into(),
        vocab_size,
        train_tokens: train.len() / 2,
        val_tokens: val.len() / 2,
        sources: infos,
    };
    std::fs::create_dir_all(&args.out).map_err(io(&args.out))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = args.out.join(name);
        crate::store::write_atomic(&path, bytes).map_err(io(&path))
    };
    write("tokenizer.json", json.as_bytes())?;
    write("train.bin", &train)?;
    write("val.bin", &val)?;
    write("meta.json", serde_json::to_string_pretty(&meta).expect("meta serializes").as_bytes())?;
    Ok(meta)
}
