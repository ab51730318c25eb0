//! Burn's CPU backend runs ctseg's kernels for f32 stride-1 convolutions, f32
//! transposed convolutions with stride = kernel, f32 BatchNorm, f32 2×2 max pooling
//! and f32 log σ (`vendor/burn-flex` → `ctseg-cpu-conv`); in f64 the same operations keep Flex's own kernels and Burn's
//! default implementations and gradients. The two paths must agree on the forward pass
//! and on every gradient, through autodiff as training uses them.

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::module::{
    batch_norm, batch_norm_train, conv_transpose2d, conv2d, max_pool2d, max_pool2d_with_indices,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use burn::tensor::{Distribution, FloatDType};

/// `a` within `tolerance` of `b`, relative to `b`'s largest magnitude (at least 1).
fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(
        worst <= tolerance * scale,
        "{what}: max |Δ| {worst} at scale {scale}"
    );
}

/// A tensor's values as f32.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(FloatDType::F32).into_data().iter::<f32>().collect()
}

/// Output and gradients (x, weight, bias) of `sum(layer(x, w, b) · r)`, computed in
/// `dtype` from the same f32 leaves (`b` has `bias_len` values), as f32 vectors.
fn layer_and_grads(
    device: &Device,
    seed: u64,
    [x_shape, w_shape]: [[usize; 4]; 2],
    bias_len: usize,
    dtype: FloatDType,
    layer: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>,
) -> [Vec<f32>; 4] {
    device.seed(seed);
    let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), device).require_grad();
    let w = Tensor::<4>::random(w_shape, Distribution::Normal(0.0, 0.3), device).require_grad();
    let b = Tensor::<1>::random([bias_len], Distribution::Normal(0.0, 0.3), device).require_grad();
    let y = layer(
        x.clone().cast(dtype),
        w.clone().cast(dtype),
        b.clone().cast(dtype),
    );
    let r = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), device).cast(dtype);
    let grads = (y.clone() * r).sum().backward();
    [
        values(y),
        values(x.grad(&grads).expect("dx")),
        values(w.grad(&grads).expect("dw")),
        values(b.grad(&grads).expect("db")),
    ]
}

/// [`layer_and_grads`] of `conv2d` (bias per output channel, `w_shape[0]`).
fn conv_and_grads(
    device: &Device,
    seed: u64,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    options: &ConvOptions<2>,
    dtype: FloatDType,
) -> [Vec<f32>; 4] {
    layer_and_grads(
        device,
        seed,
        [x_shape, w_shape],
        w_shape[0],
        dtype,
        |x, w, b| conv2d(x, w, Some(b), options.clone()),
    )
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
            assert_close(a, b, 2e-5, &format!("case {i} ({xs:?} * {ws:?}) {what}"));
        }
    }
}

/// [`layer_and_grads`] of `conv_transpose2d` (bias per output channel, `w_shape[1]`).
fn up_and_grads(
    device: &Device,
    seed: u64,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    options: &ConvTransposeOptions<2>,
    dtype: FloatDType,
) -> [Vec<f32>; 4] {
    layer_and_grads(
        device,
        seed,
        [x_shape, w_shape],
        w_shape[1],
        dtype,
        |x, w, b| conv_transpose2d(x, w, Some(b), options.clone()),
    )
}

#[test]
fn f32_transposed_convolution_agrees_with_flex_f64() {
    let device = Device::flex().autodiff();
    let up = |k: [usize; 2]| ConvTransposeOptions::new(k, [0, 0], [0, 0], [1, 1], 1);
    let cases = [
        // The U-Net's 2×2 stride-2 upsampling, several tiles per image.
        ([2, 6, 30, 21], [6, 4, 2, 2], up([2, 2])),
        // A wide one at a small resolution, like the first decoder level.
        ([2, 64, 4, 4], [64, 32, 2, 2], up([2, 2])),
        // Other stride = kernel shapes.
        ([1, 3, 5, 4], [3, 2, 3, 2], up([3, 2])),
    ];
    for (i, (xs, ws, options)) in cases.into_iter().enumerate() {
        let ours = up_and_grads(&device, 30 + i as u64, xs, ws, &options, FloatDType::F32);
        let flex = up_and_grads(&device, 30 + i as u64, xs, ws, &options, FloatDType::F64);
        for ((a, b), what) in ours.iter().zip(&flex).zip(["output", "dx", "dw", "db"]) {
            assert_close(a, b, 2e-5, &format!("up case {i} ({xs:?} * {ws:?}) {what}"));
        }
    }
}

#[test]
fn f32_batch_norm_agrees_with_flex_f64() {
    let device = Device::flex().autodiff();
    for (i, shape) in [[2, 5, 17, 13], [3, 4, 1, 1], [1, 2, 64, 64]]
        .into_iter()
        .enumerate()
    {
        let run = |dtype: FloatDType| -> Vec<Vec<f32>> {
            device.seed(50 + i as u64);
            // An offset mean: the statistics must not lose it to cancellation.
            let x = (Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device) + 5.0)
                .require_grad();
            let gamma = Tensor::<1>::random([shape[1]], Distribution::Normal(1.0, 0.3), &device)
                .require_grad();
            let beta = Tensor::<1>::random([shape[1]], Distribution::Normal(0.0, 0.3), &device)
                .require_grad();
            let out = batch_norm_train(
                x.clone().cast(dtype),
                gamma.clone().cast(dtype),
                beta.clone().cast(dtype),
                1e-5,
            );
            let r = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).cast(dtype);
            let grads = (out.output.clone() * r).sum().backward();
            // Inference with the batch statistics reproduces the training output.
            let inference = batch_norm(
                x.clone().cast(dtype).detach(),
                gamma.clone().cast(dtype).detach(),
                beta.clone().cast(dtype).detach(),
                out.mean.clone().detach(),
                out.variance.clone().detach(),
                1e-5,
            );
            vec![
                values(out.output),
                values(out.mean),
                values(out.variance),
                values(inference),
                values(x.grad(&grads).expect("dx")),
                values(gamma.grad(&grads).expect("dgamma")),
                values(beta.grad(&grads).expect("dbeta")),
            ]
        };
        let (ours, flex) = (run(FloatDType::F32), run(FloatDType::F64));
        let names = [
            "output",
            "mean",
            "variance",
            "inference",
            "dx",
            "dgamma",
            "dbeta",
        ];
        for ((a, b), what) in ours.iter().zip(&flex).zip(names) {
            assert_close(a, b, 5e-5, &format!("batch norm {shape:?} {what}"));
        }
    }
}

/// Max pooling (with and without indices) and log σ, and the gradients of
/// `sum(pool(x) · r)` and `sum(log σ(x) · r)`, computed in `dtype` from the same f32
/// values, as f32 vectors.
fn pool_and_log_sigmoid(
    device: &Device,
    seed: u64,
    x_shape: [usize; 4],
    dtype: FloatDType,
) -> [Vec<f32>; 6] {
    device.seed(seed);
    // Steps of 1/4 on a small range: many ties inside the pooling windows.
    let x = Tensor::<4>::random(x_shape, Distribution::Uniform(-3.0, 3.0), device);
    let x = (x * 4.0).round().div_scalar(4.0).require_grad();
    // The U-Net's pooling: a 2×2 kernel, stride 2, no padding, floor mode.
    let options = MaxPoolOptions::new([2, 2]);
    let pooled = max_pool2d(x.clone().cast(dtype), options.clone());
    let (with_indices, indices) = max_pool2d_with_indices(x.clone().cast(dtype), options);
    let r = Tensor::<4>::random(pooled.dims(), Distribution::Normal(0.0, 1.0), device).cast(dtype);
    let pool_grad = values(
        x.grad(&(with_indices.clone() * r).sum().backward())
            .expect("a pooling gradient"),
    );
    // log σ over a wide range of logits, and its gradient.
    let logits = (x.clone() * 12.0).cast(dtype);
    let s = Tensor::<4>::random(logits.dims(), Distribution::Normal(0.0, 1.0), device).cast(dtype);
    let log_sig = log_sigmoid(logits);
    let log_sig_grad = values(
        x.grad(&(log_sig.clone() * s).sum().backward())
            .expect("a log σ gradient"),
    );
    [
        values(pooled),
        values(with_indices),
        indices
            .into_data()
            .iter::<i64>()
            .map(|i| i as f32)
            .collect(),
        pool_grad,
        values(log_sig),
        log_sig_grad,
    ]
}

#[test]
fn f32_max_pool_and_log_sigmoid_agree_with_flex_f64() {
    let device = Device::flex().autodiff();
    // Even sides, odd sides (the last row and column dropped), one window.
    for (i, shape) in [[2, 3, 8, 12], [1, 2, 7, 9], [1, 1, 2, 2]]
        .into_iter()
        .enumerate()
    {
        let ours = pool_and_log_sigmoid(&device, 50 + i as u64, shape, FloatDType::F32);
        let flex = pool_and_log_sigmoid(&device, 50 + i as u64, shape, FloatDType::F64);
        let names = [
            "max_pool2d",
            "with indices",
            "indices",
            "pool dx",
            "log σ",
            "log σ dx",
        ];
        for ((a, b), what) in ours.iter().zip(&flex).zip(names) {
            assert_close(a, b, 1e-6, &format!("case {i} {shape:?} {what}"));
        }
    }
}
