//! ctseg's change to Burn's CPU backend: f32 conv2d with stride 1, dilation 1 and one
//! group — every convolution of ctseg's U-Net — and its input and weight gradients run
//! on `ctseg-cpu-conv`'s tiled im2col + gemm kernels (NCHW, no layout round trip; the
//! weight gradient as one accumulated GEMM per tile instead of Burn's default, a
//! convolution with the output gradient as its kernel). Everything else keeps Flex's
//! own path; the fallbacks below are Burn 0.22.1's default gradients
//! (`burn-backend/src/backend/ops/modules/conv.rs`, MIT OR Apache-2.0), copied because
//! a trait override cannot call the default it replaces.

use alloc::vec;
use alloc::vec::Vec;

use burn_backend::ops::conv::{calculate_padding_out, pad_asymmetric_conv_input};
use burn_backend::ops::{ConvOptions, ConvTransposeOptions, FloatTensorOps, ModuleOps};
use burn_backend::{DType, TensorMetadata};
use burn_std::{Bytes, Shape, Slice};
use ctseg_cpu_conv::ConvShape;

use crate::{Flex, FlexTensor, Layout};

/// The kernels' shape for a conv2d of `x` `[n, c, h, w]` with `weight`
/// `[o, c, kh, kw]`, when they handle it: f32, stride 1, dilation 1, one group.
fn fast_shape(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<ConvShape> {
    if x.dtype() != DType::F32
        || weight.dtype() != DType::F32
        || options.stride != [1, 1]
        || options.dilation != [1, 1]
        || options.groups != 1
    {
        return None;
    }
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if xs.num_dims() != 4 || ws.num_dims() != 4 || ws[1] != xs[1] {
        return None;
    }
    let [(top, bottom), (left, right)] = options.padding;
    let shape = ConvShape {
        batch: xs[0],
        in_channels: xs[1],
        out_channels: ws[0],
        input: [xs[2], xs[3]],
        kernel: [ws[2], ws[3]],
        padding: [top, bottom, left, right],
    };
    // Padding at least the kernel's size (never in a U-Net) stays on Flex's path.
    let [kh, kw] = shape.kernel;
    let usable = shape.batch > 0
        && shape.in_channels > 0
        && shape.out_channels > 0
        && kh > 0
        && kw > 0
        && top < kh
        && bottom < kh
        && left < kw
        && right < kw
        && shape.output()[0] > 0
        && shape.output()[1] > 0;
    usable.then_some(shape)
}

/// The values of an f32 tensor in row-major order (a copy only when not contiguous).
fn with_values<R>(t: &FlexTensor, f: impl FnOnce(&[f32]) -> R) -> R {
    if let Some((start, end)) = t.layout().contiguous_offsets() {
        return f(&t.storage::<f32>()[start..end]);
    }
    let c = t.to_contiguous();
    let (start, end) = c
        .layout()
        .contiguous_offsets()
        .unwrap_or((0, c.layout().num_elements()));
    f(&c.storage::<f32>()[start..end])
}

fn tensor(values: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::new(dims)),
        DType::F32,
    )
}

/// conv2d on the kernels, or `None` when they do not handle the call.
pub(crate) fn conv2d(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let shape = fast_shape(x, weight, options)?;
    if bias.is_some_and(|b| b.dtype() != DType::F32) {
        return None;
    }
    let out = with_values(x, |xv| {
        with_values(weight, |wv| match bias {
            Some(b) => with_values(b, |bv| ctseg_cpu_conv::conv2d(&shape, xv, wv, Some(bv))),
            None => ctseg_cpu_conv::conv2d(&shape, xv, wv, None),
        })
    })
    .ok()?;
    let [ho, wo] = shape.output();
    Some(tensor(out, [shape.batch, shape.out_channels, ho, wo]))
}

/// The input gradient of conv2d on the kernels, else Burn's default.
pub(crate) fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    if let Some(shape) = fast_shape(&x, &weight, &options)
        && output_grad.dtype() == DType::F32
        && let Ok(dx) = with_values(&output_grad, |dy| {
            with_values(&weight, |wv| ctseg_cpu_conv::conv2d_input_grad(&shape, dy, wv))
        })
    {
        let [h, w] = shape.input;
        return tensor(dx, [shape.batch, shape.in_channels, h, w]);
    }
    default::conv2d_x_backward(x, weight, output_grad, options)
}

/// The weight gradient of conv2d on the kernels, else Burn's default.
pub(crate) fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    if let Some(shape) = fast_shape(&x, &weight, &options)
        && output_grad.dtype() == DType::F32
        && let Ok(dw) = with_values(&x, |xv| {
            with_values(&output_grad, |dy| ctseg_cpu_conv::conv2d_weight_grad(&shape, xv, dy))
        })
    {
        let [kh, kw] = shape.kernel;
        return tensor(dw, [shape.out_channels, shape.in_channels, kh, kw]);
    }
    default::conv2d_weight_backward(x, weight, output_grad, options)
}

/// Burn 0.22.1's default conv2d gradients (see the module comment).
mod default {
    use super::*;

    type B = Flex;

    pub(super) fn conv2d_x_backward(
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

    pub(super) fn conv2d_weight_backward(
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
}
