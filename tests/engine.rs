//! The async, step-wise engine the page drives (`src/engine.rs`) and the chat template
//! (`src/chat.rs`), natively: against the blocking `generate` loop and the CPU reference.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::Arc;

use common::hf_model_dir;
use wgpt::chat::{Message, Template, build_prompt, conversation_ids, template};
use wgpt::engine::Engine;
use wgpt::generate::{FinishReason, GenerateParams, generate};
use wgpt::gpu::{Gpu, GpuOptions};
use wgpt::{Bundle, ForwardOptions, SamplingParams, Tokenizer};

fn bundle() -> Bundle {
    Bundle::load(&hf_model_dir("tiny-f32")).unwrap()
}

/// Runs a reply to the end in steps of `n`; returns its text and finish.
fn run(engine: &mut Engine, prompt: &[u32], params: SamplingParams, max: usize, n: usize) -> (String, FinishReason) {
    engine.start(prompt, params, max, vec![], None).unwrap();
    let mut text = String::new();
    loop {
        let step = pollster::block_on(engine.step(n)).unwrap();
        assert!(step.tokens <= n);
        text.push_str(&step.text);
        if let Some(f) = step.finish {
            return (text, f);
        }
    }
}

#[test]
fn stepwise_generation_equals_the_generate_loop() {
    let b = bundle();
    let prompt = b.tokenizer.encode("You are a good man").unwrap();
    for params in [
        SamplingParams { temperature: 0.0, ..Default::default() },
        SamplingParams { temperature: 0.9, top_k: 20, top_p: 0.9, seed: 3, ..Default::default() },
    ] {
        let mut session = b.cpu_session();
        let gp = GenerateParams { max_tokens: 20, sampling: params, stop_tokens: vec![] };
        let want = generate(&mut session, &b.tokenizer, &prompt, &gp, |_| true).unwrap().text;
        for n in [1, 3, 64] {
            let mut engine = Engine::cpu(bundle().into()).unwrap();
            let (text, finish) = run(&mut engine, &prompt, params, 20, n);
            assert_eq!(text, want, "steps of {n}");
            assert_eq!(finish, FinishReason::MaxTokens);
        }
    }
}

#[test]
fn a_following_prompt_reuses_the_cache_and_gives_the_same_answer() {
    let b = bundle();
    let greedy = SamplingParams { temperature: 0.0, ..Default::default() };
    let first = b.tokenizer.encode("You are").unwrap();
    let mut engine = Engine::cpu(bundle().into()).unwrap();
    let (reply, _) = run(&mut engine, &first, greedy, 6, 4);
    let second = b.tokenizer.encode(&format!("You are{reply} and then")).unwrap();
    let (cached, _) = run(&mut engine, &second, greedy, 8, 4);
    let mut fresh = Engine::cpu(bundle().into()).unwrap();
    let (uncached, _) = run(&mut fresh, &second, greedy, 8, 4);
    assert_eq!(cached, uncached);
}

#[test]
fn next_token_probabilities_and_attention_match_the_reference() {
    let b = bundle();
    let ids = b.tokenizer.encode("You are a good man").unwrap();
    let mut engine = Engine::cpu(bundle().into()).unwrap();
    let top = pollster::block_on(engine.next_token_probs(&ids, 5)).unwrap();
    assert_eq!(top.len(), 5);
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
    let mut s = b.cpu_session();
    let logits = s.run(&ids, ForwardOptions::default()).unwrap().last_logits().to_vec();
    let argmax = (0..logits.len()).max_by(|&a, &c| logits[a].total_cmp(&logits[c])).unwrap() as u32;
    assert_eq!(top[0].0, argmax);
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    assert!((top[0].1 - 1.0 / z).abs() < 1e-5);

    let maps = pollster::block_on(engine.attention(&ids)).unwrap();
    s.reset();
    let want = s.run(&ids, ForwardOptions { attention: true, ..Default::default() }).unwrap().attention.clone();
    assert_eq!(maps, want);
    assert!(pollster::block_on(engine.attention(&[])).is_err());
    assert!(pollster::block_on(engine.next_token_probs(&vec![1; 65], 3)).is_err(), "longer than the context");
}

#[test]
fn the_gpu_engine_answers_as_the_cpu_one() {
    let gpu = match pollster::block_on(Gpu::new()) {
        Ok(g) => Arc::new(g),
        Err(e) => panic!("no Vulkan adapter (install mesa-vulkan-drivers): {e}"),
    };
    let b = bundle();
    let prompt = b.tokenizer.encode("You are a good man").unwrap();
    let greedy = SamplingParams { temperature: 0.0, ..Default::default() };
    let mut cpu = Engine::cpu(bundle().into()).unwrap();
    let mut on_gpu = Engine::gpu(bundle().into(), gpu, GpuOptions::default()).map_err(|e| e.0).unwrap();
    assert_eq!(on_gpu.backend(), "gpu");
    assert_eq!(run(&mut cpu, &prompt, greedy, 12, 5), run(&mut on_gpu, &prompt, greedy, 12, 5));
    let a = pollster::block_on(cpu.next_token_probs(&prompt, 3)).unwrap();
    let g = pollster::block_on(on_gpu.next_token_probs(&prompt, 3)).unwrap();
    assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), g.iter().map(|x| x.0).collect::<Vec<_>>());
}

#[test]
fn a_repetition_penalty_counts_the_same_context_on_both_engines_after_a_truncation() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a Vulkan adapter (CI uses Mesa's lavapipe)"));
    let b = bundle();
    let first = b.tokenizer.encode("You are a good man, and you will be a king").unwrap();
    // Shares only "You are" with the first turn: both engines drop the rest of the cache, and
    // the penalty must forget the dropped tokens (and the first reply) on both.
    let second = b.tokenizer.encode("You are").unwrap();
    for seed in 0..4 {
        let params = SamplingParams { temperature: 0.9, top_k: 0, top_p: 1.0, repetition_penalty: 3.0, seed };
        let mut cpu = Engine::cpu(bundle().into()).unwrap();
        let mut on_gpu = Engine::gpu(bundle().into(), gpu.clone(), GpuOptions::default()).map_err(|e| e.0).unwrap();
        for prompt in [&first, &second] {
            let want = run(&mut cpu, prompt, params, 16, 4);
            assert_eq!(run(&mut on_gpu, prompt, params, 16, 4), want, "seed {seed}, prompt {prompt:?}");
        }
    }
}

/// The fixture's tokenizer with the trainer's chat tokens added.
fn chatml_tokenizer() -> Tokenizer {
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf_model_dir("tiny-f32").join("tokenizer.json")).unwrap()).unwrap();
    for (id, content) in [(512, "<|im_start|>"), (513, "<|im_end|>")] {
        json["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
            "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        }));
    }
    Tokenizer::from_json(json.to_string().as_bytes()).unwrap()
}

fn msg(role: &str, content: &str) -> Message {
    Message { role: role.into(), content: content.into() }
}

#[test]
fn chat_templates_and_context_trimming() {
    let tok = chatml_tokenizer();
    assert_eq!(template(&tok), Template::ChatMl { start: 512, end: 513 });
    let conv =
        [msg("system", "Be brief."), msg("user", "你好"), msg("assistant", "Hello!"), msg("user", "Who are you?")];
    let p = build_prompt(&tok, Some(0), &conv, 1000, 0).unwrap();
    assert_eq!(
        tok.decode(&p.ids).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(p.stop_tokens, vec![513, 0]);
    assert_eq!(p.dropped, 0);
    // Too long for the context: the oldest turns go, the system message stays.
    let short = build_prompt(&tok, Some(0), &conv, p.ids.len() - 5, 0).unwrap();
    assert!(short.dropped >= 1);
    assert!(tok.decode(&short.ids).unwrap().starts_with("<|im_start|>system\nBe brief."));
    assert!(tok.decode(&short.ids).unwrap().ends_with("Who are you?<|im_end|>\n<|im_start|>assistant\n"));
    assert!(build_prompt(&tok, None, &conv, 8, 0).is_err());
    assert!(build_prompt(&tok, None, &[msg("robot", "x")], 64, 0).is_err());
    assert!(build_prompt(&tok, None, &[], 64, 0).is_err());

    // GPT-2-style tokenizers get a plain transcript that stops at the next "User:" turn.
    let b = bundle();
    assert_eq!(template(&b.tokenizer), Template::Plain);
    let p = build_prompt(&b.tokenizer, b.config.eos_token_id, &conv[1..], 64, 8).unwrap();
    assert_eq!(b.tokenizer.decode(&p.ids).unwrap(), "User: 你好\nAssistant: Hello!\nUser: Who are you?\nAssistant:");
    assert_eq!(p.stop_text.as_deref(), Some("\nUser:"));
}

#[test]
fn training_conversations_are_the_prompts_the_page_builds_plus_the_targets() {
    let tok = chatml_tokenizer();
    let conv =
        [msg("user", "你好"), msg("assistant", "Hello!"), msg("user", "Who are you?"), msg("assistant", "wgpt.")];
    let (ids, target) = conversation_ids(&tok, &conv).unwrap();
    // What the engine is given before the last reply is exactly the training text's prefix.
    let prompt = build_prompt(&tok, Some(0), &conv[..3], 1000, 0).unwrap();
    assert_eq!(&ids[..prompt.ids.len()], &prompt.ids[..]);
    // The targets are the assistant's words and its <|im_end|>, nothing else.
    let learned: Vec<u32> = ids.iter().zip(&target).filter(|(_, t)| **t).map(|(i, _)| *i).collect();
    let mut want = tok.encode("Hello!").unwrap();
    want.push(513);
    want.extend(tok.encode("wgpt.").unwrap());
    want.push(513);
    assert_eq!(learned, want);
    assert!(conversation_ids(&tok, &[]).is_err());
    assert!(conversation_ids(&tok, &[msg("robot", "x")]).is_err());
}

#[test]
fn stop_text_ends_the_reply_and_is_not_shown() {
    let b = bundle();
    let prompt = b.tokenizer.encode("You are a good man").unwrap();
    let greedy = SamplingParams { temperature: 0.0, ..Default::default() };
    let mut engine = Engine::cpu(bundle().into()).unwrap();
    let (full, _) = run(&mut engine, &prompt, greedy, 24, 5);
    // Stop at a piece of the greedy continuation itself: the reply must end just before it.
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 8, "{full:?}");
    let stop: String = chars[5..8].iter().collect();
    let cut = full.find(&stop).unwrap();
    let mut engine = Engine::cpu(bundle().into()).unwrap();
    engine.start(&prompt, greedy, 24, vec![], Some(stop.clone())).unwrap();
    let mut text = String::new();
    let finish = loop {
        let step = pollster::block_on(engine.step(2)).unwrap();
        text.push_str(&step.text);
        if let Some(f) = step.finish {
            break f;
        }
    };
    assert_eq!(finish, FinishReason::StopToken);
    assert_eq!(text, full[..cut]);
}
