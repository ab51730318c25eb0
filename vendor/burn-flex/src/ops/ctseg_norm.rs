//! ctseg's change to Burn's CPU backend, part two: f32 BatchNorm — training (batch
//! statistics), its backward pass, and inference — on `ctseg-cpu-conv`'s fused
//! per-channel kernels (two passes forward, two backward, parallel over channels)
//! instead of Burn's default, a chain of broadcasts, reductions and transposed copies.
//! Other dtypes keep Burn 0.22.1's default (`ctseg_default`).

use burn_backend::DType;
use burn_backend::ops::{BatchNormTrain, BatchNormTrainBackward};
use ctseg_cpu_conv::{NormShape, norm};

use super::ctseg_conv::{tensor, with_values};
use super::ctseg_default as default;
use crate::{Flex, FlexTensor, Layout};

/// The `[batch, channels, spatial]` view of an f32 `x` (rank ≥ 2) whose per-channel
/// companions are all f32, when the kernels handle it.
fn norm_shape(x: &FlexTensor, per_channel: &[&FlexTensor]) -> Option<NormShape> {
    let dims = x.layout().shape();
    if x.dtype() != DType::F32 || dims.num_dims() < 2 {
        return None;
    }
    let shape = NormShape {
        batch: dims[0],
        channels: dims[1],
        spatial: dims.iter().skip(2).product(),
    };
    let companions_fit = per_channel.iter().all(|t| {
        t.dtype() == DType::F32 && t.layout().shape().num_elements() == shape.channels
    });
    (companions_fit && shape.batch > 0 && shape.channels > 0 && shape.spatial > 0)
        .then_some(shape)
}

/// A tensor of `x`'s shape holding `values`.
fn like(x: &FlexTensor, values: alloc::vec::Vec<f32>) -> FlexTensor {
    FlexTensor::new(
        burn_std::Bytes::from_elems(values),
        Layout::contiguous(x.layout().shape().clone()),
        DType::F32,
    )
}

/// BatchNorm with given statistics.
pub(crate) fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    if let Some(shape) = norm_shape(&x, &[&gamma, &beta, &mean, &variance])
        && let Ok(out) = with_values(&x, |xv| {
            with_values(&gamma, |g| {
                with_values(&beta, |b| {
                    with_values(&mean, |m| {
                        with_values(&variance, |v| norm::batch_norm(&shape, xv, g, b, m, v, epsilon))
                    })
                })
            })
        })
    {
        return like(&x, out);
    }
    default::batch_norm(x, gamma, beta, mean, variance, epsilon)
}

/// BatchNorm with the batch's statistics, and the statistics.
pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> BatchNormTrain<Flex> {
    if let Some(shape) = norm_shape(&x, &[&gamma, &beta])
        && let Ok(out) = with_values(&x, |xv| {
            with_values(&gamma, |g| {
                with_values(&beta, |b| norm::batch_norm_train(&shape, xv, g, b, epsilon))
            })
        })
    {
        return BatchNormTrain::new(
            like(&x, out.output),
            tensor(out.mean, [shape.channels]),
            tensor(out.variance, [shape.channels]),
        );
    }
    default::batch_norm_train(x, gamma, beta, epsilon)
}

/// The gradients of [`batch_norm_train`].
pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> BatchNormTrainBackward<Flex> {
    if let Some(shape) = norm_shape(&x, &[&gamma, &mean, &variance])
        && output_grad.dtype() == DType::F32
        && output_grad.layout().shape() == x.layout().shape()
        && let Ok(grads) = with_values(&x, |xv| {
            with_values(&gamma, |g| {
                with_values(&mean, |m| {
                    with_values(&variance, |v| {
                        with_values(&output_grad, |dy| {
                            norm::batch_norm_train_backward(&shape, xv, g, m, v, epsilon, dy)
                        })
                    })
                })
            })
        })
    {
        return BatchNormTrainBackward::new(
            like(&x, grads.x),
            tensor(grads.gamma, [shape.channels]),
            tensor(grads.beta, [shape.channels]),
        );
    }
    default::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad)
}
