//! The geometric part: affine maps, elastic displacement fields and the single
//! resampling pass (bilinear image, nearest labels) and flips.

use rand::Rng;

use super::config::{IMAGE_FILL, LABEL_FILL};
use super::symmetric;

/// An affine map from output pixel `(x, y)` to source position
/// `(a·x + b·y + c, d·x + e·y + f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Affine {
    pub(super) a: f32,
    pub(super) b: f32,
    pub(super) c: f32,
    pub(super) d: f32,
    pub(super) e: f32,
    pub(super) f: f32,
}

impl Affine {
    /// The inverse of: flip(s), then rotate by `angle_deg` and zoom by `scale`
    /// about the slice centre, then shift by `(tx, ty)` pixels. Rotation and zoom
    /// are about the pixel-centre midpoint `((w−1)/2, (h−1)/2)`, so flips are exact.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn inverse_map(
        h: usize,
        w: usize,
        angle_deg: f32,
        scale: f32,
        tx: f32,
        ty: f32,
        hflip: bool,
        vflip: bool,
    ) -> Self {
        let cx = (w as f32 - 1.0) * 0.5;
        let cy = (h as f32 - 1.0) * 0.5;
        let (sin, cos) = (angle_deg.to_radians() as f64).sin_cos();
        let inv_s = 1.0 / scale as f64;
        // Undo shift, rotation and zoom: q = C + R(−θ)/s · (p − C − t).
        let (m00, m01, m10, m11) = (cos * inv_s, sin * inv_s, -sin * inv_s, cos * inv_s);
        let ox = (cx + tx) as f64;
        let oy = (cy + ty) as f64;
        let mut a = Affine {
            a: m00 as f32,
            b: m01 as f32,
            c: (cx as f64 - m00 * ox - m01 * oy) as f32,
            d: m10 as f32,
            e: m11 as f32,
            f: (cy as f64 - m10 * ox - m11 * oy) as f32,
        };
        // Undo the flips: x ↦ (w−1) − x, y ↦ (h−1) − y.
        if hflip {
            a.a = -a.a;
            a.b = -a.b;
            a.c = (w as f32 - 1.0) - a.c;
        }
        if vflip {
            a.d = -a.d;
            a.e = -a.e;
            a.f = (h as f32 - 1.0) - a.f;
        }
        a
    }
}

/// A smooth random displacement field on a grid `k` times coarser than the slice
/// (node `(i, j)` sits at pixel `(i·k, j·k)`), interpolated bilinearly.
pub(super) struct ElasticField {
    pub(super) k: usize,
    pub(super) gw: usize,
    /// Displacements along x and y in pixels, `gh·gw` each.
    pub(super) dx: Vec<f32>,
    pub(super) dy: Vec<f32>,
    /// `i / k` for `i` in `0..k`: interpolation weights between two nodes.
    pub(super) frac: Vec<f32>,
}

impl ElasticField {
    /// Simard's field: uniform [−1, 1] noise, Gaussian-smoothed with `sigma`
    /// pixels, times `alpha`. At grid spacing `k` the noise is smoothed with
    /// `sigma / k` nodes and scaled by `alpha / k`, which gives the same
    /// displacement statistics as the full-resolution construction.
    pub(super) fn random(h: usize, w: usize, alpha: f32, sigma: f32, rng: &mut impl Rng) -> Self {
        let sigma = if sigma.is_finite() {
            sigma.max(0.0)
        } else {
            0.0
        };
        let k = ((sigma / 1.5) as usize).clamp(1, 64);
        let gw = w.saturating_sub(1) / k + 2;
        let gh = h.saturating_sub(1) / k + 2;
        let kernel = gaussian_kernel(sigma / k as f32);
        let gain = alpha / k as f32;
        let mut dx = smoothed_noise(gw, gh, &kernel, rng);
        let mut dy = smoothed_noise(gw, gh, &kernel, rng);
        for field in [&mut dx, &mut dy] {
            field.iter_mut().for_each(|v| *v *= gain);
        }
        let frac = (0..k).map(|i| i as f32 / k as f32).collect();
        Self {
            k,
            gw,
            dx,
            dy,
            frac,
        }
    }

    /// The displacements of output row `y`, interpolated into `row_dx`/`row_dy`
    /// (length `w`), with `tmp_x`/`tmp_y` scratch rows of `gw` nodes.
    pub(super) fn row(
        &self,
        y: usize,
        tmp: (&mut [f32], &mut [f32]),
        row_dx: &mut [f32],
        row_dy: &mut [f32],
    ) {
        let (gw, k) = (self.gw, self.k);
        let j = y / k;
        let fy = self.frac[y % k];
        let (tmp_x, tmp_y) = tmp;
        for (field, out) in [(&self.dx, &mut *tmp_x), (&self.dy, &mut *tmp_y)] {
            let r0 = &field[j * gw..(j + 1) * gw];
            let r1 = &field[(j + 1) * gw..(j + 2) * gw];
            for ((o, &a), &b) in out.iter_mut().zip(r0).zip(r1) {
                *o = a + fy * (b - a);
            }
        }
        // Pixels i·k .. i·k+k−1 lie between nodes i and i+1.
        for (tmp, out) in [(&*tmp_x, row_dx), (&*tmp_y, row_dy)] {
            for (nodes, chunk) in tmp.windows(2).zip(out.chunks_mut(k)) {
                let (a, b) = (nodes[0], nodes[1]);
                for (o, &f) in chunk.iter_mut().zip(&self.frac) {
                    *o = a + f * (b - a);
                }
            }
        }
    }
}

/// A normalised Gaussian kernel of standard deviation `sigma` (radius ⌈3σ⌉); `[1]`
/// for `sigma ≤ 0`.
pub(super) fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return vec![1.0];
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let mut k: Vec<f32> = (-radius..=radius)
        .map(|t| (-((t * t) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// A `gh×gw` grid of independent uniform `[-1, 1]` values smoothed by the
/// separable `kernel`. The noise is drawn with a margin of the kernel radius on
/// every side, so the smoothed values have the same statistics everywhere (no edge
/// effects).
pub(super) fn smoothed_noise(gw: usize, gh: usize, kernel: &[f32], rng: &mut impl Rng) -> Vec<f32> {
    let r = kernel.len() / 2;
    let (nw, nh) = (gw + 2 * r, gh + 2 * r);
    let noise: Vec<f32> = (0..nw * nh).map(|_| symmetric(rng, 1.0)).collect();
    // Horizontal: nh rows of nw → nh rows of gw.
    let mut tmp = vec![0.0f32; nh * gw];
    for (src, dst) in noise.chunks_exact(nw).zip(tmp.chunks_exact_mut(gw)) {
        for (t, &kv) in kernel.iter().enumerate() {
            for (o, &v) in dst.iter_mut().zip(&src[t..t + gw]) {
                *o += kv * v;
            }
        }
    }
    // Vertical: whole rows at a time, nh rows → gh rows.
    let mut out = vec![0.0f32; gh * gw];
    for (y, dst) in out.chunks_exact_mut(gw).enumerate() {
        for (t, &kv) in kernel.iter().enumerate() {
            let src = &tmp[(y + t) * gw..(y + t + 1) * gw];
            for (o, &v) in dst.iter_mut().zip(src) {
                *o += kv * v;
            }
        }
    }
    out
}

/// The source of a resampling pass: image and labels copied into buffers with a
/// border of fill values (1 pixel before, 2 after, in x and in y), so that every
/// clamped sample position has all four bilinear corners inside the buffer and no
/// per-pixel bounds branch is needed.
pub(super) struct PaddedSource {
    pub(super) img: Vec<f32>,
    pub(super) lab: Vec<u8>,
    /// Padded row length, `w + 3`.
    pub(super) pw: usize,
    /// Largest padded coordinate, `w + 1` and `h + 1` (a fill column/row).
    pub(super) x_max: f32,
    pub(super) y_max: f32,
}

/// Per-row sampling positions, resolved into buffer offsets and weights.
pub(super) struct RowTaps {
    /// Offset of the top-left bilinear corner in the padded buffer.
    pub(super) corner: Vec<u32>,
    /// Offset of the nearest pixel (the corner closest to the point).
    pub(super) nearest: Vec<u32>,
    /// Bilinear weights of the right and bottom corners.
    pub(super) ax: Vec<f32>,
    pub(super) ay: Vec<f32>,
}

/// 2^23: adding it to a float in `[0, 2^22)` leaves the integer part in the
/// mantissa's low bits, rounded to nearest.
pub(super) const MAGIC: f32 = 8_388_608.0;

/// Slice sides [`augment`] resamples must be below this (the float tricks below
/// need it); the padded slice must also have fewer than 2^32 pixels.
pub(super) const MAX_SIDE: usize = 1 << 22;

/// ⌊v⌋ for `v` in `[0, 2^22)`, exact, with float operations only (SSE2 lacks a
/// vector floor and a cheap saturating float-to-int conversion; this vectorises).
#[inline(always)]
pub(super) fn floor_small(v: f32) -> f32 {
    let r = (v + MAGIC) - MAGIC; // v rounded to nearest
    if r > v { r - 1.0 } else { r }
}

/// The integer value of an integral float in `[0, 2^22)`.
#[inline(always)]
pub(super) fn small_to_u32(v: f32) -> u32 {
    (v + MAGIC).to_bits() & 0x7f_ffff
}

impl PaddedSource {
    pub(super) fn new(image: &[f32], labels: &[u8], h: usize, w: usize) -> Self {
        let (pw, ph) = (w + 3, h + 3);
        let mut img = Vec::with_capacity(pw * ph);
        let mut lab = Vec::with_capacity(pw * ph);
        img.resize(pw + 1, IMAGE_FILL);
        lab.resize(pw + 1, LABEL_FILL);
        for (img_row, lab_row) in image.chunks_exact(w).zip(labels.chunks_exact(w)) {
            img.extend_from_slice(img_row);
            img.extend_from_slice(&[IMAGE_FILL; 3]);
            lab.extend_from_slice(lab_row);
            lab.extend_from_slice(&[LABEL_FILL; 3]);
        }
        img.resize(pw * ph, IMAGE_FILL);
        lab.resize(pw * ph, LABEL_FILL);
        Self {
            img,
            lab,
            pw,
            x_max: (w + 1) as f32,
            y_max: (h + 1) as f32,
        }
    }

    /// Resolves source positions `(sx[i], sy[i])` (pixel units) into `taps`. A
    /// branch-free loop that the compiler vectorises.
    pub(super) fn locate(&self, sx: &[f32], sy: &[f32], taps: &mut RowTaps) {
        let (pw, x_max, y_max) = (self.pw as u32, self.x_max, self.y_max);
        let outs = taps.corner.iter_mut().zip(taps.nearest.iter_mut());
        let weights = taps.ax.iter_mut().zip(taps.ay.iter_mut());
        for (((&sx, &sy), (corner, nearest)), (ax, ay)) in sx.iter().zip(sy).zip(outs).zip(weights)
        {
            // Padded coordinates clamped to [0, w+1] × [0, h+1] (NaN → 0): anything
            // further out lands on the fill border and reads fill.
            let px = (sx + 1.0).max(0.0).min(x_max);
            let py = (sy + 1.0).max(0.0).min(y_max);
            let (x0, y0) = (floor_small(px), floor_small(py));
            (*ax, *ay) = (px - x0, py - y0);
            *corner = small_to_u32(y0) * pw + small_to_u32(x0);
            *nearest = *corner + u32::from(*ax >= 0.5) + if *ay >= 0.5 { pw } else { 0 };
        }
    }

    /// Samples at the located taps: bilinear image values and nearest labels. The
    /// nearest pixel is the bilinear cell corner closest to the point, so both
    /// read the same cell and image and labels stay aligned.
    pub(super) fn gather(&self, taps: &RowTaps, img_row: &mut [f32], lab_row: &mut [u8]) {
        let pw = self.pw;
        let outs = img_row.iter_mut().zip(lab_row.iter_mut());
        let locs = taps.corner.iter().zip(&taps.nearest);
        let weights = taps.ax.iter().zip(&taps.ay);
        for ((v, l), ((&corner, &nearest), (&ax, &ay))) in outs.zip(locs.zip(weights)) {
            let i = corner as usize;
            let top = &self.img[i..i + 2];
            let bottom = &self.img[i + pw..i + pw + 2];
            // Lerp form: a zero fraction returns the corner value exactly.
            let t = top[0] + ax * (top[1] - top[0]);
            let b = bottom[0] + ax * (bottom[1] - bottom[0]);
            *v = t + ay * (b - t);
            *l = self.lab[nearest as usize];
        }
    }
}

/// Resamples image and labels through `map` (+ `field`) in one pass.
pub(super) fn resample(
    image: &mut [f32],
    labels: &mut [u8],
    h: usize,
    w: usize,
    map: &Affine,
    field: Option<&ElasticField>,
) {
    assert!(
        h < MAX_SIDE && w < MAX_SIDE && (h + 3) * (w + 3) <= u32::MAX as usize,
        "slice {h}x{w} too large to resample"
    );
    let src = PaddedSource::new(image, labels, h, w);
    let xs: Vec<f32> = (0..w).map(|x| x as f32).collect();
    let (mut sx, mut sy) = (vec![0.0f32; w], vec![0.0f32; w]);
    let mut taps = RowTaps {
        corner: vec![0; w],
        nearest: vec![0; w],
        ax: vec![0.0; w],
        ay: vec![0.0; w],
    };
    // Elastic: scratch rows of grid nodes and the row displacements.
    let gw = field.map_or(0, |f| f.gw);
    let (mut tmp_x, mut tmp_y) = (vec![0.0f32; gw], vec![0.0f32; gw]);
    let (mut row_dx, mut row_dy) = (vec![0.0f32; w], vec![0.0f32; w]);

    let rows = image.chunks_exact_mut(w).zip(labels.chunks_exact_mut(w));
    for (y, (img_row, lab_row)) in rows.enumerate() {
        let bx = map.b * y as f32 + map.c;
        let by = map.e * y as f32 + map.f;
        for ((x, sx), sy) in xs.iter().zip(&mut sx).zip(&mut sy) {
            *sx = map.a * x + bx;
            *sy = map.d * x + by;
        }
        if let Some(f) = field {
            f.row(y, (&mut tmp_x, &mut tmp_y), &mut row_dx, &mut row_dy);
            sx.iter_mut().zip(&row_dx).for_each(|(s, d)| *s += d);
            sy.iter_mut().zip(&row_dy).for_each(|(s, d)| *s += d);
        }
        src.locate(&sx, &sy, &mut taps);
        src.gather(&taps, img_row, lab_row);
    }
}

/// Exact mirror flips without resampling.
pub(super) fn flip_in_place(
    image: &mut [f32],
    labels: &mut [u8],
    h: usize,
    w: usize,
    hflip: bool,
    vflip: bool,
) {
    if hflip {
        image.chunks_exact_mut(w).for_each(|r| r.reverse());
        labels.chunks_exact_mut(w).for_each(|r| r.reverse());
    }
    if vflip {
        for y in 0..h / 2 {
            let (top, bottom) = image.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
            let (top, bottom) = labels.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
        }
    }
}
