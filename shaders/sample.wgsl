// sample.wgsl — temperature / top-k / top-p sampling with a repetition penalty, on the GPU, so a
// decode step reads back one token id. The same definition as the CPU sampler (src/sampler.rs):
//
//   s_i = penalised(logit_i) / temperature        (penalty: seen tokens, l > 0 ? l / r : l · r)
//   top-k: keep s_i ≥ τ_k, the k-th largest s      (ties kept; τ_k = -∞ when k = 0 or k ≥ vocab)
//   top-p: keep s_i ≥ τ, the largest τ ≥ τ_k whose kept mass Σ_{s ≥ τ} e^{s - max} ≥ p · Z_k
//   token: walking ids in order over kept tokens, the first whose cumulative mass exceeds u · Z,
//          u = uniform(seed, draw) from the same PCG hash as the CPU.
//
// Thresholds are found exactly by bisection on an order-preserving u32 key of the f32 scores,
// one bit per pass (32 passes for top-k, 32 for top-p), each pass a strided count or sum.
// Layout: logits [logit_rows, vocab] (the last row is sampled); seen [vocab] u32 (1 = in the
// context; embed.wgsl sets it); scratch [vocab] f32; token [1] u32.
// Dispatch: (1); one workgroup of 256.
// Bindings: `SampleBindings`, uniform `VocabDims` and `Sampling` (src/gpu/kernels.rs, uniforms.rs).

var<workgroup> part: array<f32, 256>;
var<workgroup> shared_value: f32;
var<workgroup> chosen: u32;

fn hash32(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn uniform01(seed_lo: u32, seed_hi: u32, draw: u32) -> f32 {
    let s = hash32(seed_lo ^ hash32(seed_hi));
    let r = hash32(s ^ hash32(draw));
    return f32(r >> 8u) / 16777216.0;
}

// Monotone map from f32 to u32: a < b ⇔ key(a) < key(b).
fn key(f: f32) -> u32 {
    let b = bitcast<u32>(f);
    return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}

fn reduce_sum(v: f32, li: u32) -> f32 {
    part[li] = v;
    workgroupBarrier();
    if (li == 0u) {
        var s = 0.0;
        for (var i = 0u; i < 256u; i++) { s += part[i]; }
        shared_value = s;
    }
    workgroupBarrier();
    let r = shared_value;
    workgroupBarrier();
    return r;
}

fn reduce_max(v: f32, li: u32) -> f32 {
    part[li] = v;
    workgroupBarrier();
    if (li == 0u) {
        var m = part[0];
        for (var i = 1u; i < 256u; i++) { m = max(m, part[i]); }
        shared_value = m;
    }
    workgroupBarrier();
    let r = shared_value;
    workgroupBarrier();
    return r;
}

// Σ over tokens with key(s) ≥ t of (count ? 1 : e^{s - m}).
fn mass_above(t: u32, m: f32, count: bool, li: u32) -> f32 {
    var acc = 0.0;
    for (var i = li; i < dims.vocab; i += 256u) {
        let s = scores[i];
        if (key(s) >= t) { acc += select(exp(s - m), 1.0, count); }
    }
    return reduce_sum(acc, li);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    let V = dims.vocab;
    let base = (step.logit_rows - 1u) * V;
    var m = -3.4e38;
    for (var i = li; i < V; i += 256u) {
        var l = logits[base + i];
        if (params.penalty != 1.0 && seen[i] != 0u) {
            l = select(l * params.penalty, l / params.penalty, l > 0.0);
        }
        let s = l / params.temperature;
        scores[i] = s;
        m = max(m, s);
    }
    storageBarrier();
    m = reduce_max(m, li);

    var t = 0u;
    if (params.top_k > 0u && params.top_k < V) {
        for (var bit = 31i; bit >= 0i; bit--) {
            let cand = t | (1u << u32(bit));
            if (mass_above(cand, m, true, li) >= f32(params.top_k)) { t = cand; }
        }
    }
    if (params.top_p < 1.0) {
        let goal = params.top_p * mass_above(t, m, false, li);
        var tp = 0u;
        for (var bit = 31i; bit >= 0i; bit--) {
            let cand = tp | (1u << u32(bit));
            if (mass_above(max(cand, t), m, false, li) >= goal) { tp = cand; }
        }
        t = max(t, tp);
    }

    // Locate u · Z among the kept tokens in id order: per-thread contiguous chunks, then a scan.
    let chunk = (V + 255u) / 256u;
    let lo = li * chunk;
    let hi = min(V, lo + chunk);
    var own = 0.0;
    for (var i = lo; i < hi; i++) {
        let s = scores[i];
        if (key(s) >= t) { own += exp(s - m); }
    }
    part[li] = own;
    workgroupBarrier();
    if (li == 0u) {
        var z = 0.0;
        for (var i = 0u; i < 256u; i++) { z += part[i]; }
        let point = uniform01(params.seed_lo, params.seed_hi, params.draw) * z;
        var acc = 0.0;
        var who = 0u;
        var rest = 0.0;
        for (var i = 0u; i < 256u; i++) {
            if (part[i] > 0.0) {
                who = i;
                rest = point - acc;
                if (point < acc + part[i]) { break; }
            }
            acc += part[i];
        }
        chosen = who;
        shared_value = rest;
    }
    workgroupBarrier();
    if (li == chosen) {
        let rest = shared_value;
        var acc = 0.0;
        var pick = lo;
        for (var i = lo; i < hi; i++) {
            let s = scores[i];
            if (key(s) >= t) {
                let e = exp(s - m);
                acc += e;
                pick = i;
                if (rest < acc) { break; }
            }
        }
        token[0] = pick;
    }
}
