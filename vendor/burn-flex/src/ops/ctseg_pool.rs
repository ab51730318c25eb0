//! ctseg's change to Burn's CPU backend, part three: f32 2×2 max pooling with stride 2
//! (the U-Net's downsampling), with and without indices, on `ctseg-cpu-conv`'s
//! one-pass kernel instead of Flex's generic 3-D pooling (a window search per output
//! value). Same values and the same indices (per plane, `row · width + column`; ties
//! keep the first, a NaN wins); other calls keep Flex's path.

use burn_backend::DType;
use ctseg_cpu_conv::{PoolShape, pool};

use super::ctseg_conv::{tensor, with_values};
use crate::{FlexTensor, Layout};

/// The planes of an f32 NCHW `x` when the call is a plain 2×2, stride-2 pooling
/// (no padding, no dilation; `ceil_mode` only where it changes nothing).
fn shape_2x2(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<(PoolShape, [usize; 4])> {
    let dims = x.layout().shape();
    if x.dtype() != DType::F32
        || dims.num_dims() != 4
        || kernel_size != [2, 2]
        || stride != [2, 2]
        || padding != [0, 0]
        || dilation != [1, 1]
    {
        return None;
    }
    let [n, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
    if ceil_mode && (h % 2 != 0 || w % 2 != 0) {
        return None;
    }
    let shape = PoolShape {
        planes: n * c,
        input: [h, w],
    };
    let [ho, wo] = shape.output();
    Some((shape, [n, c, ho, wo]))
}

/// `max_pool2d` on the kernel, or `None` when it does not handle the call.
pub(crate) fn max_pool2d(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<FlexTensor> {
    let (shape, dims) = shape_2x2(x, kernel_size, stride, padding, dilation, ceil_mode)?;
    let out = with_values(x, |xv| pool::max_pool_2x2(&shape, xv)).ok()?;
    Some(tensor(out, dims))
}

/// `max_pool2d_with_indices` on the kernel (the indices in i64, as Flex's), or `None`
/// when it does not handle the call.
pub(crate) fn max_pool2d_with_indices(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<(FlexTensor, FlexTensor)> {
    let (shape, dims) = shape_2x2(x, kernel_size, stride, padding, dilation, ceil_mode)?;
    let (out, indices) = with_values(x, |xv| pool::max_pool_2x2_with_indices(&shape, xv)).ok()?;
    let indices = FlexTensor::new(
        burn_std::Bytes::from_elems(indices),
        Layout::contiguous(burn_std::Shape::new(dims)),
        DType::I64,
    );
    Some((tensor(out, dims), indices))
}
