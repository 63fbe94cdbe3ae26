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
