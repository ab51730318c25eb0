//! Burn 0.22.1's default implementations of the `ModuleOps` methods that
//! `ctseg_conv` and `ctseg_norm` override (`burn-backend/src/backend/ops/modules/`
//! `conv.rs` and `base.rs`, MIT OR Apache-2.0), for the calls ctseg's kernels do not
//! handle (other dtypes, strides, groups): a trait override cannot call the default it
//! replaces.

use alloc::vec;
use alloc::vec::Vec;

use burn_backend::ops::conv::{calculate_padding_out, pad_asymmetric_conv_input};
use burn_backend::ops::{
    BatchNormTrain, BatchNormTrainBackward, ConvOptions, ConvTransposeOptions, FloatTensorOps,
    ModuleOps,
};
use burn_backend::{Scalar, TensorMetadata};
use burn_std::{Shape, Slice};

use crate::{Flex, FlexTensor};

type B = Flex;

pub(crate) fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    if options.is_asymmetric() {
        let input_shape = x.shape();
        let padding = options.padding;
        let (x, options) = pad_asymmetric_conv_input::<B, 2>(x, options);
        let grad = conv2d_x_backward_symmetric(x, weight, output_grad, options);
        let mut ranges = input_shape
            .iter()
            .map(|&size| Slice::from(0..size))
            .collect::<Vec<_>>();
        for (dim, (begin, _)) in padding.iter().enumerate() {
            ranges[dim + 2] = Slice::from(*begin..*begin + input_shape[dim + 2]);
        }
        return B::float_slice(grad, &ranges);
    }
    conv2d_x_backward_symmetric(x, weight, output_grad, options)
}

fn conv2d_x_backward_symmetric(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let weight_shape = weight.shape();
    let [_batch_size, _channels_in, height_in, width_in] = x.shape().dims();
    let [_, _, height_out, width_out] = output_grad.shape().dims();
    let [_channels_out, _, kernel_size_1, kernel_size_2] = weight_shape.dims();
    let padding_1_out = calculate_padding_out(
        kernel_size_1,
        options.stride[0],
        options.padding_begin()[0],
        options.dilation[0],
        height_in,
        height_out,
    );
    let padding_2_out = calculate_padding_out(
        kernel_size_2,
        options.stride[1],
        options.padding_begin()[1],
        options.dilation[1],
        width_in,
        width_out,
    );
    B::conv_transpose2d(
        output_grad,
        weight,
        None,
        ConvTransposeOptions::new(
            options.stride,
            options.padding_begin(),
            [padding_1_out, padding_2_out],
            options.dilation,
            options.groups,
        ),
    )
}

pub(crate) fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let (x, options) = pad_asymmetric_conv_input::<B, 2>(x, options);
    let weight_shape = weight.shape();
    if options.groups == 1 {
        return weight_grad_no_groups(x, output_grad, weight_shape, options);
    }
    let zeros = B::float_zeros(weight_shape, &Default::default(), weight.dtype().into());
    weight_grad_groups(x, zeros, output_grad, options)
}

fn weight_grad_no_groups(
    x: FlexTensor,
    output_grad: FlexTensor,
    weight_shape: Shape,
    options: ConvOptions<2>,
) -> FlexTensor {
    let x_swapped = B::float_swap_dims(x, 0, 1);
    let output_grad_swapped = B::float_swap_dims(output_grad, 0, 1);
    let weight_grad_swapped = B::conv2d(
        x_swapped,
        output_grad_swapped,
        None,
        ConvOptions::new(options.dilation, options.padding_begin(), options.stride, 1),
    );
    let mut weight_grad = B::float_swap_dims(weight_grad_swapped, 0, 1);
    if weight_grad.shape() != weight_shape {
        let slices = vec![
            Slice::from(0..weight_shape[0]),
            Slice::from(0..weight_shape[1]),
            Slice::from(0..weight_shape[2]),
            Slice::from(0..weight_shape[3]),
        ];
        weight_grad = B::float_slice(weight_grad, &slices);
    }
    weight_grad
}

fn weight_grad_groups(
    x: FlexTensor,
    mut weight_grad: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let [channels_out, increment_ci, kernel_size_1, kernel_size_2] =
        weight_grad.shape().dims();
    let increment_co = channels_out / options.groups;
    let x_swapped = B::float_swap_dims(x, 0, 1);
    let output_grad_swapped = B::float_swap_dims(output_grad, 0, 1);
    for g in 0..options.groups {
        let (ci0, ci1) = (g * increment_ci, (g + 1) * increment_ci);
        let (co0, co1) = (g * increment_co, (g + 1) * increment_co);
        let x = B::float_slice(
            x_swapped.clone(),
            &[Slice::new(ci0 as isize, Some(ci1 as isize), 1)],
        );
        let grad = B::float_slice(
            output_grad_swapped.clone(),
            &[Slice::new(co0 as isize, Some(co1 as isize), 1)],
        );
        let mut tmp = B::conv2d(
            x,
            grad,
            None,
            ConvOptions::new(options.dilation, options.padding_begin(), options.stride, 1),
        );
        tmp = B::float_swap_dims(tmp, 0, 1);
        let [_, _, k1, k2] = tmp.shape().dims();
        if k1 != kernel_size_1 || k2 != kernel_size_2 {
            tmp = B::float_slice(
                tmp,
                &[
                    Slice::from(0..increment_co),
                    Slice::from(0..increment_ci),
                    Slice::from(0..kernel_size_1),
                    Slice::from(0..kernel_size_2),
                ],
            );
        }
        weight_grad = B::float_slice_assign(
            weight_grad,
            &[
                Slice::from(co0..co1),
                Slice::from(0..increment_ci),
                Slice::from(0..kernel_size_1),
                Slice::from(0..kernel_size_2),
            ],
            tmp,
        );
    }
    weight_grad
}

pub(crate) fn conv_transpose2d_x_backward(
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvTransposeOptions<2>,
) -> FlexTensor {
    let [batch_size, _c_out, out_h, out_w] = output_grad.shape().dims();
    let [c_in, _c_out_groups, k_h, k_w] = weight.shape().dims();
    let grad = B::conv2d(
        output_grad,
        weight,
        None,
        ConvOptions::new(
            options.stride,
            options.padding,
            options.dilation,
            options.groups,
        ),
    );
    if options.padding_out[0] == 0 && options.padding_out[1] == 0 {
        return grad;
    }
    // size_out = (size_in − 1)·stride + dilation·(k − 1) + 1 + padding_out − 2·padding.
    let size_in = |i: usize, k: usize, size_out: usize| {
        (size_out + 2 * options.padding[i] - options.dilation[i] * (k - 1)
            - options.padding_out[i]
            - 1)
            / options.stride[i]
            + 1
    };
    B::float_slice(
        grad,
        &[
            Slice::from(0..batch_size),
            Slice::from(0..c_in),
            Slice::from(0..size_in(0, k_h, out_h)),
            Slice::from(0..size_in(1, k_w, out_w)),
        ],
    )
}

pub(crate) fn conv_transpose2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvTransposeOptions<2>,
) -> FlexTensor {
    let weight_shape = weight.shape();
    let x_swapped = B::float_swap_dims(x, 0, 1);
    let output_grad_swapped = B::float_swap_dims(output_grad, 0, 1);
    let conv = ConvOptions::new(options.dilation, options.padding, options.stride, 1);
    if options.groups == 1 {
        let mut weight_grad = B::float_swap_dims(
            B::conv2d(output_grad_swapped, x_swapped, None, conv),
            0,
            1,
        );
        if weight_grad.shape() != weight_shape {
            let slices: Vec<Slice> = (0..4).map(|d| Slice::from(0..weight_shape[d])).collect();
            weight_grad = B::float_slice(weight_grad, &slices);
        }
        return weight_grad;
    }
    let mut weight_grad = B::float_zeros(
        weight_shape.clone(),
        &Default::default(),
        weight.dtype().into(),
    );
    let [channels_in, increment_co, kernel_size_1, kernel_size_2] = weight_shape.dims();
    let increment_ci = channels_in / options.groups;
    for g in 0..options.groups {
        let (ci0, ci1) = (g * increment_ci, (g + 1) * increment_ci);
        let (co0, co1) = (g * increment_co, (g + 1) * increment_co);
        let x = B::float_slice(
            x_swapped.clone(),
            &[Slice::new(ci0 as isize, Some(ci1 as isize), 1)],
        );
        let grad = B::float_slice(
            output_grad_swapped.clone(),
            &[Slice::new(co0 as isize, Some(co1 as isize), 1)],
        );
        let mut tmp = B::float_swap_dims(B::conv2d(grad, x, None, conv.clone()), 0, 1);
        let [_, _, k1, k2] = tmp.shape().dims();
        if k1 != kernel_size_1 || k2 != kernel_size_2 {
            tmp = B::float_slice(
                tmp,
                &[
                    Slice::from(0..increment_ci),
                    Slice::from(0..increment_co),
                    Slice::from(0..kernel_size_1),
                    Slice::from(0..kernel_size_2),
                ],
            );
        }
        weight_grad = B::float_slice_assign(
            weight_grad,
            &[
                Slice::from(ci0..ci1),
                Slice::from(0..increment_co),
                Slice::from(0..kernel_size_1),
                Slice::from(0..kernel_size_2),
            ],
            tmp,
        );
    }
    weight_grad
}

/// Burn's default bias gradient, the same for conv2d and transposed conv2d.
pub(crate) fn bias_backward(
    x: FlexTensor,
    bias: FlexTensor,
    output_grad: FlexTensor,
) -> FlexTensor {
    let [batch_size, _channels_in, _, _] = x.shape().dims();
    let [_, channels_out, height_out, width_out] = output_grad.shape().dims();
    let grad = B::float_swap_dims(output_grad, 0, 1);
    let grad = B::float_reshape(
        grad,
        Shape::new([channels_out, batch_size * height_out * width_out]),
    );
    B::float_reshape(B::float_sum_dim(grad, 1), bias.shape())
}

/// `[1, channels, 1, …]` for a tensor of `rank` dimensions.
fn per_channel(rank: usize, channels: usize) -> Shape {
    let mut dims = vec![1; rank];
    dims[1] = channels;
    Shape::from(dims)
}

pub(crate) fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let shape = per_channel(x.shape().num_dims(), x.shape()[1]);
    let gamma = B::float_reshape(gamma, shape.clone());
    let beta = B::float_reshape(beta, shape.clone());
    let mean = B::float_reshape(mean, shape.clone());
    let variance = B::float_reshape(variance, shape);
    let std = B::float_sqrt(B::float_add_scalar(variance, Scalar::Float(epsilon)));
    let normalized = B::float_div(B::float_sub(x, mean), std);
    B::float_add(B::float_mul(normalized, gamma), beta)
}

pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> BatchNormTrain<B> {
    let shape = x.shape();
    let channels = shape[1];
    let flattened = Shape::new([channels, shape.num_elements() / channels]);
    let mean = B::float_mean_dim(
        B::float_reshape(B::float_swap_dims(x.clone(), 0, 1), flattened.clone()),
        1,
    );
    let mean = B::float_reshape(mean, per_channel(shape.num_dims(), channels));
    let centered = B::float_sub(x.clone(), mean.clone());
    let variance = B::float_mean_dim(
        B::float_reshape(
            B::float_swap_dims(B::float_mul(centered.clone(), centered), 0, 1),
            flattened,
        ),
        1,
    );
    let mean = B::float_reshape(mean, Shape::new([channels]));
    let variance = B::float_reshape(variance, Shape::new([channels]));
    let output = batch_norm(x, gamma, beta, mean.clone(), variance.clone(), epsilon);
    BatchNormTrain::new(output, mean, variance)
}

pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> BatchNormTrainBackward<B> {
    let shape = x.shape();
    let channels = shape[1];
    let flattened = Shape::new([channels, shape.num_elements() / channels]);
    let per_channel = per_channel(shape.num_dims(), channels);
    let inv_std = B::float_reshape(
        B::float_recip(B::float_sqrt(B::float_add_scalar(
            variance,
            Scalar::Float(epsilon),
        ))),
        per_channel.clone(),
    );
    let normalized = B::float_mul(
        B::float_sub(x, B::float_reshape(mean, per_channel.clone())),
        inv_std.clone(),
    );
    let output_grad_flat = B::float_reshape(
        B::float_swap_dims(output_grad.clone(), 0, 1),
        flattened.clone(),
    );
    let normalized_grad_flat = B::float_reshape(
        B::float_swap_dims(B::float_mul(output_grad.clone(), normalized.clone()), 0, 1),
        flattened,
    );
    let beta_grad = B::float_sum_dim(output_grad_flat.clone(), 1);
    let gamma_grad = B::float_sum_dim(normalized_grad_flat.clone(), 1);
    let mean_grad = B::float_reshape(B::float_mean_dim(output_grad_flat, 1), per_channel.clone());
    let mean_normalized_grad = B::float_reshape(
        B::float_mean_dim(normalized_grad_flat, 1),
        per_channel.clone(),
    );
    let centred_grad = B::float_sub(output_grad, mean_grad);
    let projected = B::float_mul(normalized, mean_normalized_grad);
    let scale = B::float_mul(B::float_reshape(gamma, per_channel), inv_std);
    let x_grad = B::float_mul(scale, B::float_sub(centred_grad, projected));
    BatchNormTrainBackward::new(
        x_grad,
        B::float_reshape(gamma_grad, Shape::new([channels])),
        B::float_reshape(beta_grad, Shape::new([channels])),
    )
}
