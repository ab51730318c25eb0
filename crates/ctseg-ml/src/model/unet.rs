//! The 2-D U-Net: DoubleConv encoder blocks with 2×2 max-pooling, a bottleneck,
//! transposed-convolution upsampling with skip concatenation, and a 1×1 head with one
//! logit per structure (sigmoid per channel: multi-label).
//!
//! Parameter names follow the PyTorch module in `benches/pytorch/unet.py`
//! (`encoders.0.conv1.weight`, `encoders.0.bn1.running_mean`, `ups.0.weight`,
//! `head.bias`, …) so weights move between the two through safetensors.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use serde::{Deserialize, Serialize};

/// Initial bias of the output logits: logit(0.01).
pub const HEAD_BIAS_INIT: f64 = -4.59511985;

/// The ε of every BatchNorm (PyTorch's and Burn's default; the ONNX export writes it).
pub const BATCH_NORM_EPSILON: f64 = 1e-5;

/// Shape of the network. The design's model is the default: base 32, depth 4
/// (encoder 32-64-128-256, bottleneck 512), 117 classes, 256×256 input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UNetConfig {
    /// Input channels (1: one windowed CT slice).
    pub in_channels: usize,
    /// Output channels: one logit per structure.
    pub num_classes: usize,
    /// Width of the first encoder block; each level doubles it.
    pub base_channels: usize,
    /// Number of encoder levels (pooling steps).
    pub depth: usize,
    /// Side of the square model input in pixels (a multiple of `2^depth`).
    pub input_size: usize,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            in_channels: 1,
            num_classes: ctseg_core::structures::NUM_STRUCTURES,
            base_channels: 32,
            depth: 4,
            input_size: 256,
        }
    }
}

/// Largest model input side accepted.
pub const MAX_INPUT_SIZE: usize = 2048;
/// Largest first-level width accepted.
pub const MAX_BASE_CHANNELS: usize = 512;

impl UNetConfig {
    /// Check that the configuration describes a buildable network.
    pub fn validate(&self) -> Result<(), String> {
        if self.in_channels == 0 || self.num_classes == 0 || self.base_channels == 0 {
            return Err("in_channels, num_classes and base_channels must be positive".into());
        }
        if self.depth == 0 || self.depth > 7 {
            return Err(format!("depth must be 1..=7, got {}", self.depth));
        }
        if self.num_classes > 255 {
            return Err(format!(
                "num_classes must fit a u8 label map (≤255), got {}",
                self.num_classes
            ));
        }
        // Bounds far above any real use, checked before anything is allocated: a
        // typo such as 100000 must not become a 600 GB allocation and an abort.
        if self.input_size > MAX_INPUT_SIZE {
            return Err(format!(
                "input_size {} is above the limit of {MAX_INPUT_SIZE} (the design uses 256)",
                self.input_size
            ));
        }
        if self.base_channels > MAX_BASE_CHANNELS {
            return Err(format!(
                "base_channels {} is above the limit of {MAX_BASE_CHANNELS} (the design uses 32)",
                self.base_channels
            ));
        }
        let factor = 1usize << self.depth;
        if self.input_size < factor || !self.input_size.is_multiple_of(factor) {
            return Err(format!(
                "input_size {} must be a positive multiple of 2^depth = {factor}",
                self.input_size
            ));
        }
        Ok(())
    }

    /// Channel widths of the encoder levels, e.g. `[32, 64, 128, 256]`.
    pub fn encoder_widths(&self) -> Vec<usize> {
        (0..self.depth).map(|i| self.base_channels << i).collect()
    }

    /// Build the network on `device` with the weights `seed` gives, whatever other
    /// threads do with the backend meanwhile.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> UNet {
        // Burn's seed is shared by every user of the backend in the process: hold it
        // from seeding to the last weight drawn, so two runs started at once (tests,
        // the viewer's trainer) each get the weights their seed promises.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(seed);
        self.init(device)
    }

    /// Build the network with freshly initialised weights on `device`, from the
    /// backend's current random state.
    pub fn init(&self, device: &Device) -> UNet {
        let widths = self.encoder_widths();
        let mut encoders = Vec::with_capacity(self.depth);
        let mut in_c = self.in_channels;
        for &w in &widths {
            encoders.push(DoubleConv::new(in_c, w, device));
            in_c = w;
        }
        let bottom = self.base_channels << self.depth;
        let bottleneck = DoubleConv::new(in_c, bottom, device);
        let mut ups = Vec::with_capacity(self.depth);
        let mut decoders = Vec::with_capacity(self.depth);
        let mut c = bottom;
        for &w in widths.iter().rev() {
            ups.push(
                ConvTranspose2dConfig::new([c, w], [2, 2])
                    .with_stride([2, 2])
                    .init(device),
            );
            decoders.push(DoubleConv::new(2 * w, w, device));
            c = w;
        }
        let mut head = Conv2dConfig::new([c, self.num_classes], [1, 1]).init(device);
        // Start every structure at a prior probability of 1 % (bias = logit(0.01)), as
        // RetinaNet does for rare foreground: most pixels are background for almost
        // every class, and from p = 0.5 Adam would spend hundreds of steps just
        // lowering the biases.
        head.bias = Some(Param::from_tensor(Tensor::full(
            [self.num_classes],
            HEAD_BIAS_INIT,
            device,
        )));
        UNet {
            encoders,
            bottleneck,
            ups,
            decoders,
            head,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// Number of trainable parameters (without BatchNorm running statistics).
    pub fn num_params(&self) -> usize {
        let conv = |i: usize, o: usize, k: usize| i * o * k * k + o;
        let double = |i: usize, o: usize| conv(i, o, 3) + conv(o, o, 3) + 4 * o;
        let widths = self.encoder_widths();
        let mut n = 0;
        let mut in_c = self.in_channels;
        for &w in &widths {
            n += double(in_c, w);
            in_c = w;
        }
        let bottom = self.base_channels << self.depth;
        n += double(in_c, bottom);
        let mut c = bottom;
        for &w in widths.iter().rev() {
            n += conv(c, w, 2) + double(2 * w, w);
            c = w;
        }
        n + conv(c, self.num_classes, 1)
    }
}

/// Conv3×3 → BatchNorm → ReLU → Conv3×3 → BatchNorm → ReLU.
#[derive(Module, Debug)]
pub struct DoubleConv {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
}

impl DoubleConv {
    fn new(in_c: usize, out_c: usize, device: &Device) -> Self {
        let conv = |i: usize| {
            Conv2dConfig::new([i, out_c], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let batch_norm = || {
            BatchNormConfig::new(out_c)
                .with_epsilon(BATCH_NORM_EPSILON)
                .init(device)
        };
        DoubleConv {
            conv1: conv(in_c),
            bn1: batch_norm(),
            conv2: conv(out_c),
            bn2: batch_norm(),
        }
    }

    /// Apply the block to `[batch, channels, height, width]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        relu(self.bn2.forward(self.conv2.forward(x)))
    }

    /// [`Self::forward`] with the convolutions in `compute` (f16/bf16) on weights cast
    /// from their f32 values, and BatchNorm (its batch statistics, running statistics
    /// and affine parameters) in f32; the output is in `compute`.
    fn forward_mixed(&self, x: Tensor<4>, compute: FloatDType) -> Tensor<4> {
        let batch_norm_in_f32 =
            |bn: &BatchNorm, y: Tensor<4>| relu(bn.forward(y.cast(FloatDType::F32)).cast(compute));
        let x = batch_norm_in_f32(&self.bn1, conv_in(&self.conv1, x, compute));
        batch_norm_in_f32(&self.bn2, conv_in(&self.conv2, x, compute))
    }
}

/// `conv.forward(x)` computed in `compute`: input, weight and bias cast to it. The
/// casts are part of the autodiff graph, so the gradients reach the f32 weights.
fn conv_in(conv: &Conv2d, x: Tensor<4>, compute: FloatDType) -> Tensor<4> {
    // The U-Net's convolutions have stride 1 (Same then pads k − 1 around the input).
    let same = |k: usize| ((k - 1) / 2, k - 1 - (k - 1) / 2);
    let pairs = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [same(conv.kernel_size[0]), same(conv.kernel_size[1])],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    };
    let options = ConvOptions::new_with_padding(conv.stride, pairs, conv.dilation, conv.groups);
    conv2d(
        x.cast(compute),
        conv.weight.val().cast(compute),
        conv.bias.as_ref().map(|b| b.val().cast(compute)),
        options,
    )
}

/// `up.forward(x)` computed in `compute`, like [`conv_in`].
fn conv_transpose_in(up: &ConvTranspose2d, x: Tensor<4>, compute: FloatDType) -> Tensor<4> {
    conv_transpose2d(
        x.cast(compute),
        up.weight.val().cast(compute),
        up.bias.as_ref().map(|b| b.val().cast(compute)),
        ConvTransposeOptions::new(
            up.stride,
            up.padding,
            up.padding_out,
            up.dilation,
            up.groups,
        ),
    )
}

/// The U-Net. Build it with [`UNetConfig::init`].
#[derive(Module, Debug)]
pub struct UNet {
    encoders: Vec<DoubleConv>,
    bottleneck: DoubleConv,
    ups: Vec<ConvTranspose2d>,
    decoders: Vec<DoubleConv>,
    head: Conv2d,
    pool: MaxPool2d,
}

impl UNet {
    /// Logits `[batch, classes, h, w]` for input `[batch, in_channels, h, w]` (h and w
    /// multiples of `2^depth`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut skips = Vec::with_capacity(self.encoders.len());
        let mut x = x;
        for encoder in &self.encoders {
            x = encoder.forward(x);
            skips.push(x.clone());
            x = self.pool.forward(x);
        }
        x = self.bottleneck.forward(x);
        for ((up, decoder), skip) in self
            .ups
            .iter()
            .zip(&self.decoders)
            .zip(skips.into_iter().rev())
        {
            let upsampled = up.forward(x);
            x = decoder.forward(Tensor::cat(vec![skip, upsampled], 1));
        }
        self.head.forward(x)
    }

    /// Mixed-precision forward pass for training: convolutions in `compute` (f16 or
    /// bf16) on the f32 master weights cast in the graph, BatchNorm in f32, activations
    /// in `compute` between layers; the logits come back in f32 for the loss. With
    /// `compute` = f32 this is [`Self::forward`].
    pub fn forward_mixed(&self, x: Tensor<4>, compute: FloatDType) -> Tensor<4> {
        if compute == FloatDType::F32 {
            return self.forward(x);
        }
        let mut skips = Vec::with_capacity(self.encoders.len());
        let mut x = x.cast(compute);
        for encoder in &self.encoders {
            x = encoder.forward_mixed(x, compute);
            skips.push(x.clone());
            x = self.pool.forward(x);
        }
        x = self.bottleneck.forward_mixed(x, compute);
        for ((up, decoder), skip) in self
            .ups
            .iter()
            .zip(&self.decoders)
            .zip(skips.into_iter().rev())
        {
            let upsampled = conv_transpose_in(up, x, compute);
            x = decoder.forward_mixed(Tensor::cat(vec![skip, upsampled], 1), compute);
        }
        conv_in(&self.head, x, compute).cast(FloatDType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> UNetConfig {
        UNetConfig {
            in_channels: 1,
            num_classes: 5,
            base_channels: 4,
            depth: 2,
            input_size: 16,
        }
    }

    #[test]
    fn default_is_the_design_model() {
        let c = UNetConfig::default();
        assert_eq!(c.encoder_widths(), vec![32, 64, 128, 256]);
        assert_eq!(c.base_channels << c.depth, 512);
        assert_eq!(c.num_classes, 117);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validation_rejects_bad_shapes() {
        let mut c = tiny();
        c.input_size = 18;
        assert!(c.validate().unwrap_err().contains("multiple"));
        c.input_size = 16;
        c.num_classes = 300;
        assert!(c.validate().is_err());
    }

    #[test]
    fn forward_shape_and_param_count() {
        let device = Device::flex();
        let config = tiny();
        let model = config.init(&device);
        let x = Tensor::<4>::zeros([2, 1, 16, 16], &device);
        assert_eq!(model.forward(x).dims(), [2, 5, 16, 16]);
        // Module::num_params counts BatchNorm running stats too (2 per channel).
        let bn_channels: usize = 2 * (4 + 8) + 2 * 16 + 2 * (8 + 4);
        assert_eq!(model.num_params(), config.num_params() + 2 * bn_channels);
    }

    #[test]
    fn mixed_forward_in_f32_is_the_forward() {
        let device = Device::flex();
        let model = tiny().init_seeded(&device, 4);
        let x = Tensor::<4>::random([1, 1, 16, 16], burn::tensor::Distribution::Default, &device);
        let a = model.forward(x.clone());
        let b = model.forward_mixed(x, FloatDType::F32);
        assert_eq!(a.into_data(), b.into_data());
    }

    #[test]
    fn mixed_forward_in_bf16_follows_f32_and_returns_f32() {
        let device = Device::flex();
        let model = tiny().init_seeded(&device, 4);
        let x = Tensor::<4>::random([2, 1, 16, 16], burn::tensor::Distribution::Default, &device);
        let full = model.forward(x.clone());
        let mixed = model.forward_mixed(x, FloatDType::BF16);
        assert_eq!(mixed.dtype(), burn::tensor::DType::F32);
        let scale = full.clone().abs().max().into_scalar::<f32>();
        let diff = (full - mixed).abs().max().into_scalar::<f32>();
        // bf16 keeps 8 mantissa bits: a few per cent of the logits' scale.
        assert!(
            diff < 0.05 * scale.max(1.0),
            "max |Δ| {diff} at scale {scale}"
        );
    }

    #[test]
    fn design_model_has_about_7_8_million_parameters() {
        let n = UNetConfig::default().num_params();
        assert!((7_700_000..7_900_000).contains(&n), "{n}");
    }
}
