// argmax.wgsl — greedy sampling on the GPU: the id of the largest logit of the last row, so a
// greedy decode step reads back 4 bytes instead of the whole vocabulary.
//
// Math: token = min { v : logits[last, v] = max_u logits[last, u] } (ties → smallest id, as the
// CPU sampler and torch.argmax).
// Layout: logits [logit_rows, vocab] f32; token [1] u32.
// Dispatch: (1); one workgroup of 256 striding over the vocabulary, then thread 0 combines.
// Bindings: `ArgmaxBindings`, uniform `VocabDims` (src/gpu/kernels.rs, uniforms.rs).

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    let base = (step.logit_rows - 1u) * dims.vocab;
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var v = li; v < dims.vocab; v += 256u) {
        let l = logits[base + v];
        if (l > bv) { bv = l; bi = v; }
    }
    best_v[li] = bv;
    best_i[li] = bi;
    workgroupBarrier();
    if (li == 0u) {
        var v = best_v[0];
        var i = best_i[0];
        for (var t = 1u; t < 256u; t++) {
            if (best_v[t] > v || (best_v[t] == v && best_i[t] < i)) { v = best_v[t]; i = best_i[t]; }
        }
        token[0] = i;
    }
}
