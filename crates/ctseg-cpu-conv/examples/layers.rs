//! Seconds per layer of the U-Net's 3×3 convolutions at batch 2 (forward, input
//! gradient, weight gradient; the best of 5), to set beside PyTorch's
//! (`benches/pytorch/conv_layers.py`). `cargo run --release -p ctseg-cpu-conv --example
//! layers` (threads: `RAYON_NUM_THREADS`).

use std::time::Instant;

use ctseg_cpu_conv::{ConvShape, conv2d, conv2d_input_grad, conv2d_weight_grad};

fn best(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() -> Result<(), ctseg_cpu_conv::ConvError> {
    let layers = [
        (1, 32, 256),
        (32, 32, 256),
        (64, 32, 256),
        (32, 64, 128),
        (64, 64, 128),
        (128, 128, 64),
        (256, 256, 32),
        (512, 512, 16),
    ];
    println!("| layer | forward s | input grad s | weight grad s |");
    println!("| --- | --- | --- | --- |");
    let (mut tf, mut tx, mut tw) = (0.0, 0.0, 0.0);
    for (ci, co, s) in layers {
        let shape = ConvShape {
            batch: 2,
            in_channels: ci,
            out_channels: co,
            input: [s, s],
            kernel: [3, 3],
            padding: [1, 1, 1, 1],
        };
        let x = vec![0.5f32; 2 * ci * s * s];
        let w = vec![0.01f32; co * ci * 9];
        let dy = vec![0.1f32; 2 * co * s * s];
        let f = best(|| {
            std::hint::black_box(conv2d(&shape, &x, &w, None).ok());
        });
        let dx = best(|| {
            std::hint::black_box(conv2d_input_grad(&shape, &dy, &w).ok());
        });
        let dw = best(|| {
            std::hint::black_box(conv2d_weight_grad(&shape, &x, &dy).ok());
        });
        conv2d(&shape, &x, &w, None)?;
        println!("| {ci}→{co} @{s}² | {f:.4} | {dx:.4} | {dw:.4} |");
        (tf, tx, tw) = (tf + f, tx + dx, tw + dw);
    }
    println!("| sum | {tf:.4} | {tx:.4} | {tw:.4} |");
    Ok(())
}
