// linear_epilogue.wgsl — the epilogue of matvec.wgsl and matmul_tiled.wgsl: what a linear layer
// does with y = x·W + b for one row and four columns col .. col + 3 (dims.mode, an `Epilogue` of
// src/gpu/uniforms.rs):
//   EPILOGUE_PLAIN:      out[row, n]  = y
//   EPILOGUE_GELU:       out[row, n]  = gelu_tanh(y)          (GPT-2's MLP up-projection)
//   EPILOGUE_RESIDUAL:   out[row, n] += y                     (projection onto the residual stream)
//   EPILOGUE_QKV_APPEND: q | k | v, N = Q + 2·KV (Q = dims.q_dim): n < Q → out[row, n] (q);
//                        n < Q + KV → k_cache[past + row, n − Q]; else v_cache[past + row, n − Q − KV]
//   EPILOGUE_QKV_ROPE:   as QKV_APPEND, and q and k rotated first (rotary position embedding).
//                        Their columns come in pairs: within a head of width hd, column 2j holds
//                        HF's dimension j and column 2j + 1 dimension j + hd/2 (src/gpu/layout.rs
//                        orders the weights so), which turn together by θ = (past + row) · f_j:
//                        a' = a·cos θ − b·sin θ, b' = b·cos θ + a·sin θ, stored at j and j + hd/2.
//   EPILOGUE_SWIGLU:     columns 4m .. 4m + 3 hold gate 2m, gate 2m+1, up 2m, up 2m+1:
//                        out[row, 2m + j] = silu(gate) · up, out [rows, N/2]
// Layout: out [rows, N] (q: [rows, Q]); k_cache / v_cache [t_max, KV] of this layer; the rotary
// table ln_b_or_rope [t_max, hd/2] of (cos θ, sin θ) pairs. head_dim % 4 == 0 (src/gpu/plan.rs),
// so four columns never straddle two heads.

fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }

fn store(row: u32, col: u32, N: u32, y: vec4<f32>) {
    switch dims.mode {
        case EPILOGUE_PLAIN: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = y[j]; } }
        case EPILOGUE_GELU: { let g = gelu_tanh(y); for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = g[j]; } }
        case EPILOGUE_RESIDUAL: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] += y[j]; } }
        case EPILOGUE_SWIGLU: {
            let half_n = N / 2u;
            out[row * half_n + col / 2u] = silu(y[0]) * y[2];
            out[row * half_n + col / 2u + 1u] = silu(y[1]) * y[3];
        }
        case EPILOGUE_QKV_ROPE: {
            let Q = dims.q_dim;
            let KV = (N - Q) / 2u;
            let pos = step.past + row;
            if (col >= Q + KV) {
                for (var j = 0u; j < 4u; j++) { v_cache[pos * KV + col - Q - KV + j] = y[j]; }
                return;
            }
            let hd = dims.head_dim;
            let half = hd / 2u;
            var o = col;
            if (col >= Q) { o = col - Q; }
            let head0 = (o / hd) * hd;
            let pair0 = (o % hd) / 2u;
            for (var p = 0u; p < 2u; p++) {
                let i = pair0 + p;
                let cs = vec2(ln_b_or_rope[2u * (pos * half + i)], ln_b_or_rope[2u * (pos * half + i) + 1u]);
                let a = y[2u * p];
                let b = y[2u * p + 1u];
                let ra = a * cs.x - b * cs.y;
                let rb = b * cs.x + a * cs.y;
                if (col < Q) {
                    out[row * Q + head0 + i] = ra;
                    out[row * Q + head0 + i + half] = rb;
                } else {
                    k_cache[pos * KV + head0 + i] = ra;
                    k_cache[pos * KV + head0 + i + half] = rb;
                }
            }
        }
        default: {
            let Q = dims.q_dim;
            let KV = (N - Q) / 2u;
            let pos = step.past + row;
            for (var j = 0u; j < 4u; j++) {
                let n = col + j;
                if (n < Q) { out[row * Q + n] = y[j]; }
                else if (n < Q + KV) { k_cache[pos * KV + n - Q] = y[j]; }
                else { v_cache[pos * KV + n - Q - KV] = y[j]; }
            }
        }
    }
}
