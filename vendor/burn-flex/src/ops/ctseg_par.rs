//! ctseg's change to Burn's CPU backend, part three: the in-place element-wise fast
//! paths (unary, scalar and same-shape binary operations on contiguous tensors) split
//! large tensors into chunks over rayon's threads. Flex 0.22.1 runs them on one
//! thread, which leaves every core but one idle through a training step's
//! activations, BatchNorm-free element-wise chains, loss and optimizer updates.

/// Elements below which a loop stays on the calling thread (256 KiB of f32).
pub(crate) const PARALLEL_MIN: usize = 1 << 16;
/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// `x = op(x)` for every element of `data`.
pub(crate) fn map_inplace<E: Copy + Send + Sync>(data: &mut [E], op: impl Fn(E) -> E + Sync) {
    #[cfg(feature = "rayon")]
    if data.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        data.par_chunks_mut(CHUNK)
            .for_each(|chunk| chunk.iter_mut().for_each(|x| *x = op(*x)));
        return;
    }
    data.iter_mut().for_each(|x| *x = op(*x));
}

/// `d = op(d, s)` for every pair of `dst` and `src` (equally long).
pub(crate) fn zip_inplace<E: Copy + Send + Sync>(
    dst: &mut [E],
    src: &[E],
    op: impl Fn(E, E) -> E + Sync,
) {
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(a, &b)| *a = op(*a, b)));
        return;
    }
    dst.iter_mut().zip(src).for_each(|(a, &b)| *a = op(*a, b));
}

/// `kernel(dst_chunk, src_chunk)` over matching chunks of `dst` and `src` (equally
/// long): a slice kernel (Flex's SIMD in-place add, sub, mul, div) run in parallel.
pub(crate) fn chunked(dst: &mut [f32], src: &[f32], kernel: fn(&mut [f32], &[f32])) {
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| kernel(d, s));
        return;
    }
    kernel(dst, src);
}

/// `src.map(op)` collected, in parallel for large slices.
pub(crate) fn map_collect<E: Copy + Send + Sync, R: Send>(
    src: &[E],
    op: impl Fn(E) -> R + Sync + Send,
) -> alloc::vec::Vec<R> {
    #[cfg(feature = "rayon")]
    if src.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        return src.par_iter().with_min_len(CHUNK).map(|&v| op(v)).collect();
    }
    src.iter().map(|&v| op(v)).collect()
}
