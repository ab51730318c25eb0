//! ctseg's change to Burn's CPU backend: f32 conv2d with stride 1, dilation 1 and one
//! group — every convolution of ctseg's U-Net — and its input and weight gradients run
//! on `ctseg-cpu-conv`'s tiled im2col + gemm kernels (NCHW, no layout round trip; the
//! weight gradient as one accumulated GEMM per tile instead of Burn's default, a
//! convolution with the output gradient as its kernel). So do f32 transposed
//! convolutions whose stride equals their kernel (the U-Net's 2×2 upsampling) and
//! their three gradients. Everything else keeps Flex's
//! own path; the fallbacks are Burn 0.22.1's defaults, copied into `ctseg_default`.

use alloc::vec::Vec;

use burn_backend::ops::{ConvOptions, ConvTransposeOptions};
use burn_backend::DType;
use burn_std::{Bytes, Shape};
use ctseg_cpu_conv::{ConvShape, NormShape, UpShape, norm, transpose};

use super::ctseg_default as default;
use crate::{FlexTensor, Layout};

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
pub(crate) fn with_values<R>(t: &FlexTensor, f: impl FnOnce(&[f32]) -> R) -> R {
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

/// A contiguous f32 tensor of `dims` holding `values`.
pub(crate) fn tensor<const N: usize>(values: Vec<f32>, dims: [usize; N]) -> FlexTensor {
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

/// The kernels' shape for a transposed conv2d of an input of `dims` `[n, c, h, w]`
/// with `weight` `[c, o, kh, kw]`, when they handle it: f32 weights, stride = kernel,
/// no padding, dilation 1, one group.
fn up_shape_for(dims: [usize; 4], weight: &FlexTensor, options: &ConvTransposeOptions<2>) -> Option<UpShape> {
    let ws = weight.layout().shape();
    if weight.dtype() != DType::F32
        || options.padding != [0, 0]
        || options.padding_out != [0, 0]
        || options.dilation != [1, 1]
        || options.groups != 1
        || ws.num_dims() != 4
        || ws[0] != dims[1]
        || options.stride != [ws[2], ws[3]]
    {
        return None;
    }
    let shape = UpShape {
        batch: dims[0],
        in_channels: dims[1],
        out_channels: ws[1],
        input: [dims[2], dims[3]],
        kernel: [ws[2], ws[3]],
    };
    (!dims.contains(&0) && ws[1] > 0 && ws[2] > 0 && ws[3] > 0).then_some(shape)
}

/// [`up_shape_for`] the f32 input `x`.
fn up_shape(x: &FlexTensor, weight: &FlexTensor, options: &ConvTransposeOptions<2>) -> Option<UpShape> {
    let xs = x.layout().shape();
    if x.dtype() != DType::F32 || xs.num_dims() != 4 {
        return None;
    }
    up_shape_for([xs[0], xs[1], xs[2], xs[3]], weight, options)
}

/// [`up_shape_for`] the input whose f32 output gradient is `output_grad`
/// (`[n, o, h·kh, w·kw]`).
fn up_shape_from_output(
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvTransposeOptions<2>,
) -> Option<UpShape> {
    let gs = output_grad.layout().shape();
    let ws = weight.layout().shape();
    if output_grad.dtype() != DType::F32 || gs.num_dims() != 4 || ws.num_dims() != 4 {
        return None;
    }
    let (kh, kw) = (ws[2], ws[3]);
    if kh == 0 || kw == 0 || gs[2] % kh != 0 || gs[3] % kw != 0 || gs[1] != ws[1] {
        return None;
    }
    up_shape_for([gs[0], ws[0], gs[2] / kh, gs[3] / kw], weight, options)
}

/// Transposed conv2d on the kernels, or `None` when they do not handle the call.
pub(crate) fn conv_transpose2d(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvTransposeOptions<2>,
) -> Option<FlexTensor> {
    let shape = up_shape(x, weight, options)?;
    if bias.is_some_and(|b| b.dtype() != DType::F32) {
        return None;
    }
    let out = with_values(x, |xv| {
        with_values(weight, |wv| match bias {
            Some(b) => with_values(b, |bv| transpose::conv_transpose2d(&shape, xv, wv, Some(bv))),
            None => transpose::conv_transpose2d(&shape, xv, wv, None),
        })
    })
    .ok()?;
    let [ho, wo] = shape.output();
    Some(tensor(out, [shape.batch, shape.out_channels, ho, wo]))
}

/// The input gradient of transposed conv2d on the kernels, else Burn's default.
pub(crate) fn conv_transpose2d_x_backward(
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvTransposeOptions<2>,
) -> FlexTensor {
    if let Some(shape) = up_shape_from_output(&weight, &output_grad, &options)
        && let Ok(dx) = with_values(&output_grad, |dy| {
            with_values(&weight, |wv| transpose::conv_transpose2d_input_grad(&shape, dy, wv))
        })
    {
        let [h, w] = shape.input;
        return tensor(dx, [shape.batch, shape.in_channels, h, w]);
    }
    default::conv_transpose2d_x_backward(weight, output_grad, options)
}

/// The weight gradient of transposed conv2d on the kernels, else Burn's default.
pub(crate) fn conv_transpose2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvTransposeOptions<2>,
) -> FlexTensor {
    if let Some(shape) = up_shape(&x, &weight, &options)
        && output_grad.dtype() == DType::F32
        && let Ok(dw) = with_values(&x, |xv| {
            with_values(&output_grad, |dy| transpose::conv_transpose2d_weight_grad(&shape, xv, dy))
        })
    {
        let [kh, kw] = shape.kernel;
        return tensor(dw, [shape.in_channels, shape.out_channels, kh, kw]);
    }
    default::conv_transpose2d_weight_backward(x, weight, output_grad, options)
}

/// The bias gradient of a conv2d or a transposed conv2d: the output gradient summed
/// per channel, in parallel (f32 on the kernels, else Burn's default — a serial
/// channel-first copy and a serial sum).
pub(crate) fn bias_backward(
    x: FlexTensor,
    bias: FlexTensor,
    output_grad: FlexTensor,
) -> FlexTensor {
    let gs = output_grad.layout().shape();
    if output_grad.dtype() == DType::F32 && bias.dtype() == DType::F32 && gs.num_dims() == 4 {
        let planes = NormShape {
            batch: gs[0],
            channels: gs[1],
            spatial: gs[2] * gs[3],
        };
        if let Ok(db) = with_values(&output_grad, |dy| norm::channel_sums(&planes, dy)) {
            return tensor(db, [planes.channels]);
        }
    }
    default::bias_backward(x, bias, output_grad)
}
