//! Buffers the kernels reuse instead of allocating and zeroing them per call: a
//! scratch block per thread (the im2col and space-to-depth blocks of the tiles), and
//! outputs that every tile writes in full (no zeroing pass before the writes).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

thread_local! {
    /// This thread's scratch block: as large as the largest asked for so far.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Run `work` with `len` scratch values of this thread. Their contents are whatever
/// an earlier call left (zeros when new): `work` must write what it reads. Reusing the
/// block spares the allocation, the zeroing and, for the large ones, the page faults
/// of a fresh buffer per tile (a U-Net training step runs thousands of tiles). A
/// nested call on the same thread gets a buffer of its own.
pub(crate) fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut block) => {
            if block.len() < len {
                block.resize(len, 0.0);
            }
            work(&mut block[..len])
        }
        Err(_) => work(&mut vec![0f32; len]),
    })
}

/// A vector of `len` values written by `fill`, which gets the address of the first
/// (as an integer, so that tiles on other threads can use it) and must write all
/// `len` of them; nothing is zeroed first.
///
/// # Safety
/// `fill` writes every one of the `len` values (through the address, in bounds)
/// before it returns, and nothing reads them before they are written.
pub(crate) unsafe fn written_in_full(len: usize, fill: impl FnOnce(usize)) -> Vec<f32> {
    let mut values: Vec<f32> = Vec::with_capacity(len);
    fill(values.as_mut_ptr() as usize);
    // SAFETY: the capacity is `len` and the caller's `fill` has initialised all of it.
    unsafe { values.set_len(len) };
    values
}

/// `out[i] = g_p(a[i])` over planes of `plane` values in parallel, `g_p = per_plane(p)`
/// for plane `p`, into a fresh vector (no zeroing pass first).
pub(crate) fn map_planes<G>(
    a: &[f32],
    plane: usize,
    per_plane: impl Fn(usize) -> G + Sync,
) -> Vec<f32>
where
    G: Fn(f32) -> f32,
{
    zip_planes(a, a, plane, |p| {
        let g = per_plane(p);
        move |u, _| g(u)
    })
}

/// `out[i] = g_p(a[i], b[i])` over planes of `plane` values in parallel,
/// `g_p = per_plane(p)` for plane `p`, into a fresh vector (no zeroing pass first).
/// `a` and `b` have the same length.
pub(crate) fn zip_planes<G>(
    a: &[f32],
    b: &[f32],
    plane: usize,
    per_plane: impl Fn(usize) -> G + Sync,
) -> Vec<f32>
where
    G: Fn(f32, f32) -> f32,
{
    assert_eq!(a.len(), b.len(), "zip_planes: operand lengths");
    let len = a.len();
    let mut out: Vec<f32> = Vec::with_capacity(len);
    if len > 0 {
        let plane = plane.max(1);
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(plane)
            .zip(a.par_chunks(plane).zip(b.par_chunks(plane)))
            .enumerate()
            .for_each(|(p, (dst, (ap, bp)))| {
                let g = per_plane(p);
                for ((d, &u), &v) in dst.iter_mut().zip(ap).zip(bp) {
                    *d = MaybeUninit::new(g(u, v));
                }
            });
    }
    // SAFETY: the destination chunks and the operands' chunks have the same lengths
    // (same total, same chunk size), and every destination value was written above.
    unsafe { out.set_len(len) };
    out
}
