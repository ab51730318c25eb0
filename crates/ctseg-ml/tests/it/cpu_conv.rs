//! Burn's CPU backend runs ctseg's convolution kernels for f32 stride-1 convolutions
//! (`vendor/burn-flex` → `ctseg-cpu-conv`); its f64 convolutions keep Flex's own
//! kernels and Burn's default gradients. The two paths must agree on the forward pass
//! and on the input, weight and bias gradients, through autodiff as training uses them.

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, FloatDType};

/// Output and gradients (x, weight, bias) of `sum(conv2d(x, w, b) · r)`, computed in
/// `dtype` from the same f32 leaves, as f32 vectors.
fn conv_and_grads(
    device: &Device,
    seed: u64,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    options: &ConvOptions<2>,
    dtype: FloatDType,
) -> [Vec<f32>; 4] {
    device.seed(seed);
    let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), device).require_grad();
    let w = Tensor::<4>::random(w_shape, Distribution::Normal(0.0, 0.3), device).require_grad();
    let b =
        Tensor::<1>::random([w_shape[0]], Distribution::Normal(0.0, 0.3), device).require_grad();
    let y = conv2d(
        x.clone().cast(dtype),
        w.clone().cast(dtype),
        Some(b.clone().cast(dtype)),
        options.clone(),
    );
    let r = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), device).cast(dtype);
    let grads = (y.clone() * r).sum().backward();
    let values =
        |t: Tensor<4>| -> Vec<f32> { t.cast(FloatDType::F32).into_data().iter::<f32>().collect() };
    let grad_of = |g: Option<Tensor<4>>| values(g.expect("a gradient"));
    [
        values(y.cast(FloatDType::F32)),
        grad_of(x.grad(&grads)),
        grad_of(w.grad(&grads)),
        b.grad(&grads)
            .expect("a bias gradient")
            .into_data()
            .iter::<f32>()
            .collect(),
    ]
}

#[test]
fn f32_kernels_agree_with_flex_f64_forward_and_gradients() {
    let device = Device::flex().autodiff();
    let same = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let cases: [([usize; 4], [usize; 4], ConvOptions<2>); 4] = [
        // The U-Net's 3×3 "same" convolution, several tiles per image.
        ([2, 3, 40, 29], [5, 3, 3, 3], same.clone()),
        // A wide layer at a small resolution, like the bottleneck.
        ([2, 48, 6, 6], [40, 48, 3, 3], same),
        // The 1×1 head.
        (
            [2, 6, 8, 8],
            [4, 6, 1, 1],
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        ),
        // Asymmetric padding.
        (
            [1, 2, 9, 7],
            [3, 2, 3, 3],
            ConvOptions::new_with_padding([1, 1], [(1, 0), (2, 1)], [1, 1], 1),
        ),
    ];
    for (i, (xs, ws, options)) in cases.into_iter().enumerate() {
        let ours = conv_and_grads(&device, 7 + i as u64, xs, ws, &options, FloatDType::F32);
        let flex = conv_and_grads(&device, 7 + i as u64, xs, ws, &options, FloatDType::F64);
        for ((a, b), what) in ours.iter().zip(&flex).zip(["output", "dx", "dw", "db"]) {
            assert_eq!(a.len(), b.len(), "case {i} {what}");
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(
                worst <= 2e-5 * scale,
                "case {i} ({xs:?} * {ws:?}) {what}: max |Δ| {worst} at scale {scale}"
            );
        }
    }
}
