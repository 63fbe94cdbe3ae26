//! The browser binding (wasm-bindgen, `--target web`): what the pages in `www/` call.

use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::bench::{BenchOptions, run};
use crate::gpu::{Gpu, GpuOptions, WeightFormat};
use crate::{GptConfig, weights::ModelWeights};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Panics (bugs) reach the console with their message instead of a bare "unreachable".
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| console_error(&info.to_string())));
}

/// Benchmarks a named shape (`tiny`, `gpt2-124m`, ...) with random weights on `backend` (`cpu` or
/// `gpu`; `dtype` `f32`/`f16` for the GPU); returns the report as JSON.
#[wasm_bindgen]
pub async fn bench(
    shape: String,
    backend: String,
    dtype: Option<String>,
    prompt_tokens: usize,
    decode_tokens: usize,
) -> Result<String, JsError> {
    let config = GptConfig::preset(&shape).ok_or_else(|| JsError::new(&format!("unknown shape {shape:?}")))?;
    let format = dtype.map(|d| d.parse::<WeightFormat>()).transpose().map_err(|e| JsError::new(&e))?;
    let gpu = match backend.as_str() {
        "cpu" => None,
        "gpu" => {
            let gpu = Gpu::new().await.map_err(|e| JsError::new(&e.to_string()))?;
            #[allow(clippy::arc_with_non_send_sync)] // one thread on the web; Arc is the engine's API
            let gpu = Arc::new(gpu);
            Some((gpu, GpuOptions { format, ..Default::default() }))
        }
        other => return Err(JsError::new(&format!("unknown backend {other:?} (cpu or gpu)"))),
    };
    let weights = ModelWeights::random(&config, 0);
    let opts = BenchOptions { prompt_tokens, decode_tokens, contexts: vec![] };
    let report = run(&config, weights, gpu, &opts, || performance_now() / 1e3)
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
    serde_json::to_string(&report).map_err(|e| JsError::new(&e.to_string()))
}
