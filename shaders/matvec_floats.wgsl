// matvec_floats.wgsl — matvec.wgsl's inner sum for f32 and f16 weights ([K, N], read four
// columns at a time through w4).
//
// Math: Σ_k x̂[k] · W[k, col .. col + 4] over k = first, first + stride, … < K.

fn column_sums(base: u32, col: u32, first: u32, stride: u32, staged: bool) -> vec4<f32> {
    let nq = dims.n / 4u;
    let quad = col / 4u;
    var acc = vec4(0.0);
    for (var k = first; k < dims.k; k += stride) {
        var xv: f32;
        if (staged) { xv = xs[k]; } else { xv = x[base + k]; }
        acc += xv * w4(k * nq + quad);
    }
    return acc;
}
