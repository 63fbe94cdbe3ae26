// linear_epilogue.wgsl — the epilogue of matvec.wgsl and matmul_tiled.wgsl: what a linear layer
// does with y = x·W + b for one row and four columns col .. col + 3 (dims.mode, an `Epilogue` of
// src/gpu/uniforms.rs):
//   EPILOGUE_PLAIN:      out[row, n]  = y
//   EPILOGUE_GELU:       out[row, n]  = gelu_tanh(y)          (MLP up-projection)
//   EPILOGUE_RESIDUAL:   out[row, n] += y                     (projection onto the residual stream)
//   EPILOGUE_QKV_APPEND: c_attn's q | k | v (N = 3C): n < C → out[row, n] (q, [rows, C]);
//                        n < 2C → k_cache[past + row, n − C]; else v_cache[past + row, n − 2C]
// Layout: out [rows, N] (q: [rows, C]); k_cache / v_cache [n_positions, C] of this layer.

fn store(row: u32, col: u32, N: u32, y: vec4<f32>) {
    switch dims.mode {
        case EPILOGUE_PLAIN: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = y[j]; } }
        case EPILOGUE_GELU: { let g = gelu_tanh(y); for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = g[j]; } }
        case EPILOGUE_RESIDUAL: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] += y[j]; } }
        default: {
            let C = N / 3u;
            let pos = step.past + row;
            for (var j = 0u; j < 4u; j++) {
                let n = col + j;
                if (n < C) { out[row * C + n] = y[j]; }
                else if (n < 2u * C) { k_cache[pos * C + n - C] = y[j]; }
                else { v_cache[pos * C + n - 2u * C] = y[j]; }
            }
        }
    }
}
