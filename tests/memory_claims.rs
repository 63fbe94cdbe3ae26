//! A model's claims about memory are checked before they are believed: a file of a few MB whose
//! config asks for a KV cache of many GB (a thousand layers of wide keys and values beside a
//! hidden size of 4) gets a CPU engine that holds fewer positions — within `CPU_KV_BUDGET` — and
//! says so through `n_ctx`, instead of filling memory as the conversation grows.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use wgpt::config::GptConfig;
use wgpt::llama::{LlamaConfig, LlamaWeights};
use wgpt::loaded::{Architecture, LoadedModel, TextFormat};
use wgpt::model::{CPU_KV_BUDGET, EngineError, ForwardOptions};
use wgpt::weights::ModelWeights;

/// 1,024 layers whose keys and values are 512 wide beside a hidden size of 4: 32 MB of weights,
/// but 4 MiB of cache per position — 16 GiB for the 4,096 positions the engine would hold.
#[test]
fn a_llama_whose_kv_cache_would_pass_the_budget_holds_fewer_positions() {
    let config = LlamaConfig::from_json(
        br#"{"model_type": "llama", "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 1024,
             "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 512, "vocab_size": 16,
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "rope_theta": 10000}"#,
    )
    .unwrap();
    let weights = Arc::new(LlamaWeights::random(&config, 1));
    let per_position = 1024 * 512 * 2 * 4;
    let model = LoadedModel { arch: Architecture::Llama { config, weights }, text: TextFormat::none() };
    let mut cpu = model.cpu(4096);
    assert_eq!(cpu.n_ctx() as u64, CPU_KV_BUDGET / per_position, "the cache is bounded by the budget");
    assert!(cpu.n_ctx() < 4096);
    let n = cpu.n_ctx();
    let err = pollster::block_on(cpu.forward(&vec![1; n + 1], ForwardOptions::default())).unwrap_err();
    assert_eq!(err, EngineError::ContextOverflow { needed: n + 1, max: n });
    pollster::block_on(cpu.forward(&[1, 2, 3], ForwardOptions::default())).unwrap();
}

/// GPT-2's cache is allocated whole at load: its learned positions times its layers, bounded by
/// the budget the same way (a small budget here, so the test allocates little).
#[test]
fn a_gpt2_cache_is_bounded_by_the_budget_too() {
    let config = GptConfig::preset("tiny").unwrap();
    let weights = Arc::new(ModelWeights::random(&config, 1));
    let per_position = (config.n_layer * config.n_embd * 2 * 4) as u64;
    let full = wgpt::cpu::CpuSession::new(config.clone(), weights.clone());
    assert_eq!(wgpt::LanguageModel::n_ctx(&full), config.n_positions);
    let small = wgpt::cpu::CpuSession::with_kv_budget(config.clone(), weights, per_position * 10);
    assert_eq!(wgpt::LanguageModel::n_ctx(&small), 10);
    let mut small = small;
    let err = small.run(&[1; 11], ForwardOptions::default()).unwrap_err();
    assert_eq!(err, EngineError::ContextOverflow { needed: 11, max: 10 });
    small.run(&[1; 10], ForwardOptions::default()).unwrap();
}
