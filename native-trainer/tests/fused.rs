//! The fused ops (CPU kernels, one autodiff node each) against the composed tensor ops that the
//! GPU backends run, both differentiated on burn's CPU backend: same values, same gradients.

use burn::tensor::{Int, Tensor, TensorData};
use wgpt_train::model::fused::{self, composed};

type Train = burn::backend::Autodiff<burn::backend::Flex>;

fn random(shape: [usize; 2], seed: u64) -> Vec<f32> {
    let mut rng = wgpt_train::rng::Rng::new(seed);
    (0..shape[0] * shape[1]).map(|_| (rng.next_u64() % 20_000) as f32 / 5_000.0 - 2.0).collect()
}

fn leaf<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<Train, D> {
    Tensor::from_data(TensorData::new(data, shape), &Default::default()).require_grad()
}

fn values<const D: usize>(t: Tensor<Train, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}");
    let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-5, "{what}: max |fused − composed| = {err}");
}

/// Runs `op` on fresh leaves made from `inputs`, backpropagates `Σ out · weights`, and returns the
/// output and each input's gradient (empty for an input the op does not use).
fn run<const D: usize>(
    inputs: &[(Vec<f32>, Vec<usize>)],
    weights: &[f32],
    op: impl Fn(&[Tensor<Train, 2>]) -> Tensor<Train, D>,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let leaves: Vec<Tensor<Train, 2>> =
        inputs.iter().map(|(d, s)| leaf(d.clone(), [s[0], s.get(1).copied().unwrap_or(1)])).collect();
    let y = op(&leaves);
    let shape = y.dims();
    let w = Tensor::<Train, D>::from_data(TensorData::new(weights.to_vec(), shape), &Default::default());
    let grads = (y.clone() * w).sum().backward();
    let g = leaves
        .iter()
        .map(|l| l.grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap()).unwrap_or_default())
        .collect();
    (values(y), g)
}

/// An op on its inputs, fused (`true`) or composed.
type Op<'a> = Box<dyn Fn(&[Tensor<Train, 2>], bool) -> Tensor<Train, 2> + 'a>;

#[test]
fn fused_ops_match_the_composed_ops_forward_and_backward() {
    let (rows, c) = (6, 5);
    let x = (random([rows, c], 1), vec![rows, c]);
    let w = (random([c, 1], 2), vec![c, 1]);
    let b = (random([c, 1], 3), vec![c, 1]);
    let dy = random([rows, c], 4);
    let vec1 = |t: &Tensor<Train, 2>| t.clone().reshape([c]);

    let cases: Vec<(&str, Op)> = vec![
        (
            "layer norm",
            Box::new(move |t, f| {
                if f {
                    fused::layer_norm(t[0].clone(), vec1(&t[1]), vec1(&t[2]), 1e-5)
                } else {
                    composed::layer_norm(t[0].clone(), vec1(&t[1]), vec1(&t[2]), 1e-5)
                }
            }),
        ),
        (
            "linear",
            Box::new(move |t, f| {
                // x [6, 5] · w [5, 5] (the first input's transpose-free square) + b [5].
                let w = t[0].clone().slice([0..c, 0..c]);
                if f {
                    fused::linear(t[0].clone(), w, vec1(&t[1]))
                } else {
                    composed::linear(t[0].clone(), w, vec1(&t[1]))
                }
            }),
        ),
        ("gelu", Box::new(|t, f| if f { fused::gelu(t[0].clone()) } else { composed::gelu(t[0].clone()) })),
    ];
    for (name, op) in &cases {
        let inputs = [x.clone(), w.clone(), b.clone()];
        let (yf, gf) = run(&inputs, &dy, |t| op(t, true));
        let (yc, gc) = run(&inputs, &dy, |t| op(t, false));
        assert_close(name, &yf, &yc);
        for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
            assert_close(&format!("{name}: gradient {i}"), a, b);
        }
    }

    // Causal attention: 2 sequences × 5 positions, 2 heads of 3; one head; one position; and
    // 70 positions, more than two of the kernel's 32-row blocks (the last one partial).
    for (batch, t, n_head, d) in [(2, 5, 2, 3), (1, 4, 1, 4), (3, 1, 2, 2), (2, 70, 2, 3)] {
        let (rows, c) = (batch * t, n_head * d);
        let qkv = (random([rows, 3 * c], 5), vec![rows, 3 * c]);
        let dy = random([rows, c], 6);
        let attend = |l: &[Tensor<Train, 2>], f: bool| {
            if f {
                fused::causal_attention(l[0].clone(), batch, n_head)
            } else {
                composed::causal_attention(l[0].clone(), batch, n_head)
            }
        };
        let (yf, gf) = run(std::slice::from_ref(&qkv), &dy, |l| attend(l, true));
        let (yc, gc) = run(std::slice::from_ref(&qkv), &dy, |l| attend(l, false));
        let what = format!("causal attention {batch}×{t}, {n_head} heads of {d}");
        assert_close(&what, &yf, &yc);
        assert_close(&format!("{what}: gradient"), &gf[0], &gc[0]);
        // Position 0 of the first sequence sees only itself: its output is its own v.
        assert_close(&format!("{what}: first position"), &yf[..c], &qkv.0[2 * c..3 * c]);
    }

    let (rows, v) = (4, 7);
    let logits = (random([rows, v], 7), vec![rows, v]);
    let targets =
        || Tensor::<Train, 1, Int>::from_data(TensorData::new(vec![0i32, 6, 3, 3], [rows]), &Default::default());
    let g = random([rows, 1], 8);
    let (lf, gf) = run(std::slice::from_ref(&logits), &g, |l| fused::target_logprobs(l[0].clone(), targets()));
    let (lc, gc) = run(&[logits], &g, |l| composed::target_logprobs(l[0].clone(), targets()));
    assert_close("target log-probabilities", &lf, &lc);
    assert_close("target log-probabilities: gradient", &gf[0], &gc[0]);
}

/// The composed attention in mixed precision (what the GPU backends run with `--precision bf16`):
/// bf16 `qkv`, matmuls in bf16, softmax in f32. Values and gradients stay within bf16's round-off
/// of the f32 op, and are not identical to it (the bf16 path ran).
#[test]
fn composed_attention_in_bf16_stays_near_f32() {
    use burn::tensor::FloatDType;
    let (batch, t, n_head, d) = (2, 9, 2, 4);
    let (rows, c) = (batch * t, n_head * d);
    let qkv = (random([rows, 3 * c], 9), vec![rows, 3 * c]);
    let dy = random([rows, c], 10);
    let (y32, g32) = run(std::slice::from_ref(&qkv), &dy, |l| composed::causal_attention(l[0].clone(), batch, n_head));
    let (y16, g16) = run(std::slice::from_ref(&qkv), &dy, |l| {
        composed::causal_attention(l[0].clone().cast(FloatDType::BF16), batch, n_head).cast(FloatDType::F32)
    });
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    for (what, a, b) in [("output", &y16, &y32), ("gradient", &g16[0], &g32[0])] {
        let err = max_diff(a, b);
        eprintln!("bf16 attention {what}: max |bf16 − f32| = {err:.2e}");
        assert!(err < 5e-2, "bf16 attention {what} is {err} from f32");
        assert!(err > 1e-5, "bf16 attention {what} equals f32 ({err}): no bf16 round-off");
    }
}
