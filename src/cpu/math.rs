//! `exp` and `tanh` for the activations (SwiGLU's SiLU, GPT-2's GELU): branch-free, so the
//! compiler vectorizes the loops that call them (SSE natively, SIMD128 in wasm), where
//! `f32::exp` and `f32::tanh` are a libm call per value — on GPT-2 124M a fifth of a 64-token
//! prefill went to `tanhf`. Within 2 ulp of libm's over the range the activations see (`tests`).
//! Attention's softmax takes `exp` too, and gives exactly 0 where it clamps (a masked score, −∞,
//! must weigh nothing).

/// `e^x`, within 2 ulp of `f32::exp` for x in [−87, 88]; clamped to that range (so never 0 or
/// ∞: for x < −87 it is about 1.6e−38, for x > 88 about 1.7e38).
#[inline]
pub fn exp(x: f32) -> f32 {
    // x = n·ln 2 + r, |r| ≤ ln 2 / 2 (ln 2 in two parts, so n·C1 is exact: Cody and Waite),
    // e^r by Cephes' polynomial, 2^n by writing the exponent's bits.
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding and subtracting it rounds to the nearest integer without a call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    // n's integer from the shifted float's mantissa bits, not by a cast (`as i32` saturates,
    // which the compiler writes as scalar code with a branch per value).
    let k = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = x - n * C1 - n * C2;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((k + 127) as u32) << 23)
}

/// `tanh(x)` as `1 − 2 / (e^{2x} + 1)`, within 2.4e−7 of `f32::tanh` (absolute, two ulp of 1: it is
/// the difference of two numbers near 1); past ±10 it is ±1, as libm's is.
#[inline]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x.clamp(-10.0, 10.0)) + 1.0)
}

#[cfg(test)]
mod tests {
    /// Every 97th f32 bit pattern in the range (about 22 million values), against libm.
    fn each(lo: f32, hi: f32, mut f: impl FnMut(f32)) {
        for bits in (0..u32::MAX).step_by(97) {
            let x = f32::from_bits(bits);
            if x >= lo && x <= hi {
                f(x);
            }
        }
    }

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm_s() {
        let mut worst = (0, 0.0);
        each(-87.0, 88.0, |x| {
            let d = ulps(super::exp(x), x.exp());
            if d > worst.0 {
                worst = (d, x);
            }
        });
        assert!(worst.0 <= 2, "exp({}) is {} ulp off", worst.1, worst.0);
        // Clamped past the range, never 0 or ∞.
        for x in [-1e30, -200.0, f32::NEG_INFINITY] {
            assert!(super::exp(x) > 0.0 && super::exp(x) < 2e-38, "{x}");
        }
        assert!(super::exp(1e30).is_finite() && super::exp(200.0) > 1e38);
    }

    #[test]
    fn tanh_is_within_2_4e_7_of_libm_s() {
        let mut worst = (0f32, 0f32);
        each(-20.0, 20.0, |x| {
            let d = (super::tanh(x) - x.tanh()).abs();
            if d > worst.0 {
                worst = (d, x);
            }
        });
        assert!(worst.0 <= 2.4e-7, "tanh({}) is {} off", worst.1, worst.0);
        assert_eq!((super::tanh(1e30), super::tanh(-1e30)), (1.0, -1.0));
    }
}
