#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wgpt_fuzz::targets::safetensors(data));
