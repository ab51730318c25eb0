//! ctseg's change to Burn's CPU backend, part three: the element-wise paths on
//! contiguous tensors (unary, scalar and same-shape binary operations, in place and
//! out of place) and the concatenation's copies split large tensors into chunks over
//! rayon's threads. Flex 0.22.1 runs them on one
//! thread, which leaves every core but one idle through a training step's
//! activations, BatchNorm-free element-wise chains, loss and optimizer updates.
//! Each chunk's loop runs through `ctseg_cpu_conv::simd`, compiled for the widest
//! vector extension the CPU has (AVX-512 or AVX2 + FMA, else the baseline).

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
            .for_each(|chunk| ctseg_cpu_conv::simd::map_inplace(chunk, &op));
        return;
    }
    ctseg_cpu_conv::simd::map_inplace(data, &op);
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
            .for_each(|(d, s)| ctseg_cpu_conv::simd::zip_inplace(d, s, &op));
        return;
    }
    ctseg_cpu_conv::simd::zip_inplace(dst, src, &op);
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
    let len = src.len();
    let mut out: alloc::vec::Vec<R> = alloc::vec::Vec::with_capacity(len);
    let dst = &mut out.spare_capacity_mut()[..len];
    #[cfg(feature = "rayon")]
    if len >= PARALLEL_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| ctseg_cpu_conv::simd::map_into(s, d, &op));
    } else {
        ctseg_cpu_conv::simd::map_into(src, dst, &op);
    }
    #[cfg(not(feature = "rayon"))]
    ctseg_cpu_conv::simd::map_into(src, dst, &op);
    // SAFETY: map_into wrote all `len` values (the destination chunks and the
    // source's chunks have the same lengths).
    unsafe { out.set_len(len) };
    out
}

/// `op(a[i], b[i])` collected (equally long slices), in parallel for large slices,
/// without a zeroing pass: the out-of-place path of same-shape binary operations
/// (neither operand uniquely owned), which Flex 0.22.1 runs on one thread.
pub(crate) fn zip_collect<A: Copy + Send + Sync, B: Copy + Send + Sync, R: Send>(
    a: &[A],
    b: &[B],
    op: impl Fn(A, B) -> R + Sync + Send,
) -> alloc::vec::Vec<R> {
    let len = a.len().min(b.len());
    let mut out: alloc::vec::Vec<R> = alloc::vec::Vec::with_capacity(len);
    let dst = &mut out.spare_capacity_mut()[..len];
    let (a, b) = (&a[..len], &b[..len]);
    #[cfg(feature = "rayon")]
    if len >= PARALLEL_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(d, (x, y))| ctseg_cpu_conv::simd::zip_into(x, y, d, &op));
    } else {
        ctseg_cpu_conv::simd::zip_into(a, b, dst, &op);
    }
    #[cfg(not(feature = "rayon"))]
    ctseg_cpu_conv::simd::zip_into(a, b, dst, &op);
    // SAFETY: zip_into wrote all `len` values (matching chunk lengths).
    unsafe { out.set_len(len) };
    out
}

/// `dst` filled with the concatenation of `pieces` (their lengths sum to its
/// length), the copies spread over rayon's threads in chunks; returns `dst`'s
/// length. Flex 0.22.1's `cat` copies on one thread.
pub(crate) fn concat_into<E: Copy + Send + Sync>(
    dst: &mut [core::mem::MaybeUninit<E>],
    pieces: &[&[E]],
) -> usize {
    let mut jobs = alloc::vec::Vec::new();
    let mut rest = dst;
    for piece in pieces {
        let (head, tail) = core::mem::take(&mut rest).split_at_mut(piece.len());
        for (d, s) in head.chunks_mut(CHUNK * 4).zip(piece.chunks(CHUNK * 4)) {
            jobs.push((d, s));
        }
        rest = tail;
    }
    assert!(rest.is_empty(), "concat_into: pieces shorter than the destination");
    let copy = |(d, s): (&mut [core::mem::MaybeUninit<E>], &[E])| {
        for (d, &v) in d.iter_mut().zip(s) {
            *d = core::mem::MaybeUninit::new(v);
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        jobs.into_par_iter().for_each(copy);
    }
    #[cfg(not(feature = "rayon"))]
    jobs.into_iter().for_each(copy);
    pieces.iter().map(|p| p.len()).sum()
}
