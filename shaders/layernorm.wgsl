// layernorm.wgsl — LayerNorm or RMSNorm of each row (prefill before the tiled GEMMs, and the
// final norm).
//
// Math: LayerNorm (dims.rms = 0): out[r] = (x[r] - mean) / sqrt(var + eps) · g + b, mean and
// (biased) variance over the row's n values, computed in two passes.
// RMSNorm (dims.rms = 1): out[r] = x[r] / sqrt(mean(x[r]²) + eps) · g.
// Layout: x, out [rows, n] f32; g, b [n] (b unread by RMSNorm). Only rows first_row .. rows are computed (the final
// LayerNorm needs just the rows whose logits are wanted).
// Dispatch: (rows - first_row); one workgroup of 64 per row, threads striding over the row.
// Bindings: `NormBindings`, uniform `NormDims` (src/gpu/kernels.rs, uniforms.rs).

var<workgroup> red: array<f32, 64>;
var<workgroup> total: f32;

fn workgroup_sum(v: f32, li: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    if (li == 0u) {
        var s = 0.0;
        for (var i = 0u; i < 64u; i++) { s += red[i]; }
        total = s;
    }
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = dims.n;
    var first = 0u;
    if (dims.only_logit_rows == 1u) { first = step.rows - step.logit_rows; }
    let base = (first + wg.x) * n;
    if (dims.rms == 1u) {
        var q = 0.0;
        for (var i = li; i < n; i += 64u) { q += x[base + i] * x[base + i]; }
        let rrms = inverseSqrt(workgroup_sum(q, li) / f32(n) + dims.eps);
        for (var i = li; i < n; i += 64u) { out[base + i] = x[base + i] * rrms * g[i]; }
        return;
    }
    var s = 0.0;
    for (var i = li; i < n; i += 64u) { s += x[base + i]; }
    let mean = workgroup_sum(s, li) / f32(n);
    var q = 0.0;
    for (var i = li; i < n; i += 64u) { let d = x[base + i] - mean; q += d * d; }
    let rstd = inverseSqrt(workgroup_sum(q, li) / f32(n) + dims.eps);
    for (var i = li; i < n; i += 64u) { out[base + i] = (x[base + i] - mean) * rstd * g[i] + b[i]; }
}
