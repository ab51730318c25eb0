//! Seeded random numbers and the shape primitives phantoms are drawn from: waves,
//! blobs, tubes, textures and gyroids.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seeded stream of one subject. Only `next_u64` is used, so values do not
/// depend on `rand`'s distribution algorithms.
pub(super) struct Rng(pub(super) ChaCha8Rng);

impl Rng {
    pub(super) fn new(seed: u64, index: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index as u64);
        Self(rng)
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(super) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[-a, a)`.
    pub(super) fn jit(&mut self, a: f64) -> f64 {
        self.range(-a, a)
    }

    /// Two independent standard normal values (Box–Muller).
    pub(super) fn normal_pair(&mut self) -> (f64, f64) {
        let u = 1.0 - self.unit(); // (0, 1]
        let v = self.unit();
        let r = (-2.0 * u.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * v).sin_cos();
        (r * c, r * s)
    }
}

// ---------------------------------------------------------------------------------
// Shapes

pub(super) type Point = [f64; 3];
/// `[min, max]` per canonical axis.
pub(super) type Bbox = [[f64; 2]; 3];

/// A smooth deformation term `amp · sin(k · p + phase)` in normalised coordinates.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wave {
    pub(super) k: Point,
    pub(super) phase: f64,
    pub(super) amp: f64,
}

impl Wave {
    pub(super) fn at(&self, p: Point) -> f64 {
        self.amp * (self.k[0] * p[0] + self.k[1] * p[1] + self.k[2] * p[2] + self.phase).sin()
    }
}

/// Two random low-frequency waves with amplitudes up to `amp`.
pub(super) fn waves(rng: &mut Rng, amp: f64) -> [Wave; 2] {
    std::array::from_fn(|_| {
        let (a, b) = rng.normal_pair();
        let (c, _) = rng.normal_pair();
        let norm = (a * a + b * b + c * c).sqrt().max(1e-9);
        let freq = rng.range(1.5, 3.5);
        Wave {
            k: [a / norm * freq, b / norm * freq, c / norm * freq],
            phase: rng.range(0.0, std::f64::consts::TAU),
            amp: rng.range(0.4, 1.0) * amp,
        }
    })
}

/// A deformed superellipsoid: in-plane superellipse (exponent `p`) combined with the
/// z axis (exponent `q`), rotated by `angle` about z, plus smooth waves.
#[derive(Debug, Clone, Copy)]
pub(super) struct Blob {
    pub(super) c: Point,
    pub(super) s: Point,
    pub(super) angle: f64,
    pub(super) p: f64,
    pub(super) q: f64,
    pub(super) waves: [Wave; 2],
}

impl Blob {
    pub(super) fn new(c: Point, s: Point, angle: f64, wobble: f64, rng: &mut Rng) -> Self {
        Self {
            c,
            s,
            angle,
            p: 2.0,
            q: 2.0,
            waves: waves(rng, wobble),
        }
    }

    pub(super) fn powers(mut self, p: f64, q: f64) -> Self {
        self.p = p;
        self.q = q;
        self
    }

    /// Normalised local coordinates of `p` (the blob is the unit ball there).
    pub(super) fn local(&self, p: Point) -> Point {
        let (dx, dy) = (p[0] - self.c[0], p[1] - self.c[1]);
        let (sin, cos) = self.angle.sin_cos();
        [
            (cos * dx + sin * dy) / self.s[0],
            (-sin * dx + cos * dy) / self.s[1],
            (p[2] - self.c[2]) / self.s[2],
        ]
    }

    /// Below 1 inside; about the fraction of the way from the centre to the surface.
    pub(super) fn level(&self, p: Point) -> f64 {
        let n = self.local(p);
        let r = if self.p == 2.0 && self.q == 2.0 {
            (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt()
        } else {
            let s = (n[0].abs().powf(self.p) + n[1].abs().powf(self.p)).powf(1.0 / self.p);
            (s.powf(self.q) + n[2].abs().powf(self.q)).powf(1.0 / self.q)
        };
        r + self.waves[0].at(n) + self.waves[1].at(n)
    }

    pub(super) fn bbox(&self) -> Bbox {
        let m = 1.02 + self.waves[0].amp.abs() + self.waves[1].amp.abs();
        let r = self.s[0].max(self.s[1]) * m;
        [
            [self.c[0] - r, self.c[0] + r],
            [self.c[1] - r, self.c[1] + r],
            [self.c[2] - self.s[2] * m, self.c[2] + self.s[2] * m],
        ]
    }
}

/// A tube around a polyline with a radius interpolated between its points.
#[derive(Debug, Clone)]
pub(super) struct Tube {
    pub(super) points: Vec<Point>,
    pub(super) radii: Vec<f64>,
}

impl Tube {
    pub(super) fn new(points: Vec<Point>, radii: Vec<f64>) -> Self {
        Self { points, radii }
    }

    /// Smallest `distance / radius` to the centre line (below 1 inside).
    pub(super) fn level(&self, p: Point) -> f64 {
        let mut best = f64::INFINITY;
        for (seg, w) in self.points.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
            let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
            let t = if len2 > 0.0 {
                ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
            let r = self.radii[seg] + t * (self.radii[seg + 1] - self.radii[seg]);
            let level = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt() / r.max(1e-6);
            best = best.min(level);
        }
        best
    }

    pub(super) fn bbox(&self) -> Bbox {
        let r = self.radii.iter().fold(0.0f64, |a, &b| a.max(b)) * 1.02;
        std::array::from_fn(|a| {
            let lo = self
                .points
                .iter()
                .map(|p| p[a])
                .fold(f64::INFINITY, f64::min);
            let hi = self
                .points
                .iter()
                .map(|p| p[a])
                .fold(f64::NEG_INFINITY, f64::max);
            [lo - r, hi + r]
        })
    }
}

/// `sin(a·x + φ0) · sin(a·y + φ1) · sin(a·z + φ2)`: a smooth texture in [-1, 1].
#[derive(Debug, Clone, Copy)]
pub(super) struct Texture {
    pub(super) freq: f64,
    pub(super) phase: Point,
}

impl Texture {
    pub(super) fn new(rng: &mut Rng, freq: f64) -> Self {
        let tau = std::f64::consts::TAU;
        Self {
            freq,
            phase: [
                rng.range(0.0, tau),
                rng.range(0.0, tau),
                rng.range(0.0, tau),
            ],
        }
    }

    /// The texture's factor along each axis of a grid (it is separable).
    pub(super) fn axis_factors(&self, axis: &[Vec<f64>; 3]) -> [Vec<f64>; 3] {
        std::array::from_fn(|a| {
            axis[a]
                .iter()
                .map(|&c| (self.freq * c + self.phase[a]).sin())
                .collect()
        })
    }

    pub(super) fn at(&self, p: Point) -> f64 {
        (self.freq * p[0] + self.phase[0]).sin()
            * (self.freq * p[1] + self.phase[1]).sin()
            * (self.freq * p[2] + self.phase[2]).sin()
    }
}

/// A randomly rotated gyroid, `sin x cos y + sin y cos z + sin z cos x` (in [-1.5,
/// 1.5]): its positive part is a labyrinth of connected tubes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gyroid {
    pub(super) rotation: [Point; 3],
    pub(super) phase: Point,
}

impl Gyroid {
    pub(super) fn new(rng: &mut Rng, freq: f64) -> Self {
        let tau = std::f64::consts::TAU;
        let (a, b, c) = (
            rng.range(0.0, tau),
            rng.range(0.0, tau),
            rng.range(0.0, tau),
        );
        let (sa, ca) = a.sin_cos();
        let (sb, cb) = b.sin_cos();
        let (sc, cc) = c.sin_cos();
        // Z(a) · X(b) · Z(c), scaled by the frequency.
        let m = [
            [ca * cc - sa * cb * sc, -ca * sc - sa * cb * cc, sa * sb],
            [sa * cc + ca * cb * sc, -sa * sc + ca * cb * cc, -ca * sb],
            [sb * sc, sb * cc, cb],
        ];
        Self {
            rotation: m.map(|row| row.map(|v| v * freq)),
            phase: [
                rng.range(0.0, tau),
                rng.range(0.0, tau),
                rng.range(0.0, tau),
            ],
        }
    }

    pub(super) fn at(&self, p: Point) -> f64 {
        let q: Point = std::array::from_fn(|r| {
            let m = self.rotation[r];
            m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + self.phase[r]
        });
        let (s, c) = (q.map(f64::sin), q.map(f64::cos));
        s[0] * c[1] + s[1] * c[2] + s[2] * c[0]
    }
}
