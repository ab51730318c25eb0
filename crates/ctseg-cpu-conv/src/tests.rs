//! The kernels against direct loops over the definition of a convolution and of its
//! gradients, on odd shapes (tiles ending mid-image, one-pixel rows, 1×1 and 5×3
//! kernels, asymmetric padding).

use super::*;

/// A deterministic pseudo-random sequence in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Every (n, o, y, x, c, i, j) whose input pixel is inside the image.
fn for_each_tap(s: &ConvShape, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    let [h, w] = s.input;
    let [ho, wo] = s.output();
    let [kh, kw] = s.kernel;
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            for y in 0..ho {
                for x in 0..wo {
                    for c in 0..s.in_channels {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y + i) as isize - s.padding[0] as isize;
                                let ix = (x + j) as isize - s.padding[2] as isize;
                                if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                                    f(n, o, y, x, c, iy as usize * w + ix as usize, i * kw + j);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= 1e-5 * scale * 10.0,
        "{what}: max |Δ| {worst} at scale {scale}"
    );
}

fn check(s: ConvShape) {
    let [h, w] = s.input;
    let [ho, wo] = s.output();
    let [kh, kw] = s.kernel;
    let (ci, co) = (s.in_channels, s.out_channels);
    let x = values(s.batch * ci * h * w, 1);
    let weight = values(co * ci * kh * kw, 2);
    let bias = values(co, 3);
    let dy = values(s.batch * co * ho * wo, 4);

    let mut y_ref = vec![0f32; s.batch * co * ho * wo];
    let mut dx_ref = vec![0f32; x.len()];
    let mut dw_ref = vec![0f32; weight.len()];
    for_each_tap(&s, |n, o, y, xo, c, pixel, tap| {
        let out = ((n * co + o) * ho + y) * wo + xo;
        let input = (n * ci + c) * h * w + pixel;
        let wi = (o * ci + c) * kh * kw + tap;
        y_ref[out] += x[input] * weight[wi];
        dx_ref[input] += dy[out] * weight[wi];
        dw_ref[wi] += dy[out] * x[input];
    });
    for (i, v) in y_ref.iter_mut().enumerate() {
        *v += bias[(i / (ho * wo)) % co];
    }
    let mut db_ref = vec![0f32; co];
    for (i, v) in dy.iter().enumerate() {
        db_ref[(i / (ho * wo)) % co] += v;
    }

    let what = format!("{s:?}");
    close(
        &conv2d(&s, &x, &weight, Some(&bias)).unwrap(),
        &y_ref,
        &format!("forward {what}"),
    );
    close(
        &conv2d_input_grad(&s, &dy, &weight).unwrap(),
        &dx_ref,
        &format!("dx {what}"),
    );
    close(
        &conv2d_weight_grad(&s, &x, &dy).unwrap(),
        &dw_ref,
        &format!("dw {what}"),
    );
    close(
        &conv2d_bias_grad(&s, &dy).unwrap(),
        &db_ref,
        &format!("db {what}"),
    );
}

#[test]
fn matches_the_definition_on_odd_shapes() {
    let shape = |batch, ci, co, input, kernel, padding| ConvShape {
        batch,
        in_channels: ci,
        out_channels: co,
        input,
        kernel,
        padding,
    };
    // The U-Net's 3×3 "same" convolution, several tiles per image (a 600-pixel-wide
    // row is one tile by itself; 7 rows of 80 pixels cut mid-image).
    check(shape(2, 3, 4, [9, 80], [3, 3], [1, 1, 1, 1]));
    check(shape(1, 2, 3, [2, 600], [3, 3], [1, 1, 1, 1]));
    // The 1×1 head, a single pixel, no padding.
    check(shape(2, 5, 3, [4, 4], [1, 1], [0, 0, 0, 0]));
    check(shape(1, 1, 1, [1, 1], [1, 1], [0, 0, 0, 0]));
    // Asymmetric kernel and padding, "valid" output.
    check(shape(2, 2, 3, [7, 6], [5, 3], [2, 1, 0, 2]));
    check(shape(1, 3, 2, [6, 5], [3, 3], [0, 0, 0, 0]));
}

#[test]
fn bad_shapes_and_lengths_are_errors() {
    let s = ConvShape {
        batch: 1,
        in_channels: 2,
        out_channels: 2,
        input: [4, 4],
        kernel: [3, 3],
        padding: [1, 1, 1, 1],
    };
    let e = conv2d(&s, &[0.0; 31], &[0.0; 36], None).unwrap_err();
    assert_eq!(
        e,
        ConvError::Length {
            what: "input",
            got: 31,
            expected: 32
        }
    );
    let small = ConvShape {
        input: [1, 1],
        padding: [0, 0, 0, 0],
        ..s
    };
    assert!(matches!(
        conv2d(&small, &[0.0; 2], &[0.0; 36], None),
        Err(ConvError::Shape(_))
    ));
    let zero = ConvShape { batch: 0, ..s };
    assert!(matches!(
        conv2d(&zero, &[], &[0.0; 36], None),
        Err(ConvError::Shape(_))
    ));
}
