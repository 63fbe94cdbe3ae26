// prelude.wgsl — what the kernels share, put before each one by src/gpu/kernels.rs (`compose`),
// after its uniform blocks and binding declarations, which are generated from the Rust tables
// there and in src/gpu/uniforms.rs.

// GPT-2's tanh-approximated GELU, four lanes at once.
fn gelu_tanh(u: vec4<f32>) -> vec4<f32> {
    // tanh saturates long before ±15; clamping keeps tanh's exp() finite on every backend.
    let inner = clamp(0.7978846 * (u + 0.044715 * u * u * u), vec4(-15.0), vec4(15.0));
    return 0.5 * u * (1.0 + tanh(inner));
}
