//! Element-wise loops compiled for the widest vector extension the CPU has, picked at
//! run time. The crate is built for the x86-64 baseline (SSE2, 4 f32 lanes), so a
//! plain loop over `log σ` or a BatchNorm expression vectorises 4 wide; the same loop
//! inside a function with AVX-512 (16 lanes) or AVX2 + FMA (8 lanes) enabled runs
//! 2–4× fewer instructions. The operation is inlined into the wide loop, so it is the
//! same arithmetic, value for value (Rust never fuses `a·b + c` on its own): the
//! results do not depend on the CPU.
//!
//! Three loop shapes carry the four operations: over one slice (`each`), over a
//! destination and a source (`pairs`), over a destination and two sources
//! (`triples`).

use std::mem::MaybeUninit;

/// `x = op(x)` for every element of `data`.
#[inline]
pub fn map_inplace<E: Copy>(data: &mut [E], op: &impl Fn(E) -> E) {
    each(data, &|x: &mut E| *x = op(*x));
}

/// `d = op(d, s)` for every pair of `dst` and `src` (the shorter length counts).
#[inline]
pub fn zip_inplace<E: Copy>(dst: &mut [E], src: &[E], op: &impl Fn(E, E) -> E) {
    pairs(dst, src, &|d: &mut E, s: E| *d = op(*d, s));
}

/// `dst[i] = op(src[i])` for every pair (the shorter length counts): writes into
/// uninitialised memory, for results collected without a zeroing pass.
#[inline]
pub fn map_into<E: Copy, R>(src: &[E], dst: &mut [MaybeUninit<R>], op: &impl Fn(E) -> R) {
    pairs(dst, src, &|d: &mut MaybeUninit<R>, s: E| {
        *d = MaybeUninit::new(op(s))
    });
}

/// `dst[i] = op(a[i], b[i])` (the shortest length counts): writes into uninitialised
/// memory, for results collected without a zeroing pass.
#[inline]
pub fn zip_into<A: Copy, B: Copy, R>(
    a: &[A],
    b: &[B],
    dst: &mut [MaybeUninit<R>],
    op: &impl Fn(A, B) -> R,
) {
    triples(dst, a, b, &|d: &mut MaybeUninit<R>, u: A, v: B| {
        *d = MaybeUninit::new(op(u, v))
    });
}

/// Defines `fn $name` running `$body` compiled for AVX-512 (F/VL/BW/DQ with AVX2 and
/// FMA) or for AVX2 + FMA when the CPU has them, else for the baseline: the one loop
/// written once, three copies made by the compiler.
macro_rules! widest {
    ($(#[$doc:meta])* fn $name:ident<$($g:ident $(: $bound:ident)?),*>($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        #[inline]
        fn $name<$($g $(: $bound)?),*>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                fn avx512<$($g $(: $bound)?),*>($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                fn avx2<$($g $(: $bound)?),*>($($arg: $ty),*) $body
                if features::avx512() {
                    // SAFETY: the CPU has the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if features::avx2() {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body
        }
    };
}

widest! {
    /// `op(x)` for every element of `data`.
    fn each<D>(data: &mut [D], op: &impl Fn(&mut D)) {
        data.iter_mut().for_each(op);
    }
}

widest! {
    /// `op(d, s)` for every pair of `dst` and `src` (the shorter length counts).
    fn pairs<D, S: Copy>(dst: &mut [D], src: &[S], op: &impl Fn(&mut D, S)) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| op(d, s));
    }
}

widest! {
    /// `op(d, u, v)` over `dst`, `a` and `b` together (the shortest length counts).
    fn triples<D, A: Copy, B: Copy>(dst: &mut [D], a: &[A], b: &[B], op: &impl Fn(&mut D, A, B)) {
        dst.iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(d, (&u, &v))| op(d, u, v));
    }
}

#[cfg(target_arch = "x86_64")]
mod features {
    use std::sync::OnceLock;

    /// AVX-512 (F, VL, BW, DQ) with AVX2 and FMA: detected once.
    pub(super) fn avx512() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512dq")
                && avx2()
        })
    }

    /// AVX2 with FMA: detected once.
    pub(super) fn avx2() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_loops_give_the_plain_loops_values() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.173).collect();
        let mut mapped = xs.clone();
        map_inplace(&mut mapped, &crate::activation::log_sigmoid);
        for (m, &x) in mapped.iter().zip(&xs) {
            assert_eq!(m.to_bits(), crate::activation::log_sigmoid(x).to_bits());
        }
        let mut collected = vec![MaybeUninit::new(0f32); xs.len()];
        map_into(&xs, &mut collected, &crate::activation::sigmoid_of_negative);
        for (c, &x) in collected.iter().zip(&xs) {
            // SAFETY: initialised above (and overwritten by map_into).
            let c = unsafe { c.assume_init() };
            assert_eq!(
                c.to_bits(),
                crate::activation::sigmoid_of_negative(x).to_bits()
            );
        }
        let mut products = vec![MaybeUninit::new(0f32); xs.len()];
        zip_into(&xs, &mapped, &mut products, &|a, b| a * b - 0.25);
        for ((p, &a), &b) in products.iter().zip(&xs).zip(&mapped) {
            // SAFETY: initialised above (and overwritten by zip_into).
            let p = unsafe { p.assume_init() };
            assert_eq!(p.to_bits(), (a * b - 0.25).to_bits());
        }
        let mut zipped = xs.clone();
        zip_inplace(&mut zipped, &mapped, &|a, b| a * b + 1.5);
        for ((z, &a), &b) in zipped.iter().zip(&xs).zip(&mapped) {
            assert_eq!(z.to_bits(), (a * b + 1.5).to_bits());
        }
    }
}
