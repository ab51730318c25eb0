//! Global gradient-norm clipping (PyTorch `clip_grad_norm_`): one norm over all
//! parameters, every gradient scaled by `min(1, max_norm / (norm + 1e-6))`. Burn's
//! own clipping is per tensor. The scale stays on the device (no sync).

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::model::UNet;

struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let factor: Tensor<D> = self.factor.clone().reshape([1; D]);
            self.grads.register::<D>(param.id, g * factor);
        }
    }
}

/// The global L2 norm of all gradients of `model` (a 1-element tensor), if any.
pub fn global_norm(model: &UNet, grads: &GradientsParams) -> Option<Tensor<1>> {
    let mut visitor = SumOfSquares { grads, total: None };
    model.visit(&mut visitor);
    visitor.total.map(|t| t.sqrt())
}

/// Multiply every gradient of `model` by `factor`.
pub fn scale_gradients(model: &UNet, grads: &mut GradientsParams, factor: f64) {
    struct ByFactor<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for ByFactor<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    model.visit(&mut ByFactor { grads, factor });
}

/// Scale all gradients so that their global norm is at most `max_norm`.
pub fn clip_global_norm(model: &UNet, grads: &mut GradientsParams, max_norm: f64) {
    let Some(norm) = global_norm(model, grads) else {
        return;
    };
    let factor = (norm + 1e-6).recip().mul_scalar(max_norm).clamp_max(1.0);
    let mut visitor = Scale { grads, factor };
    model.visit(&mut visitor);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UNetConfig, loss::bce_with_logits};

    #[test]
    fn clipped_gradients_have_the_requested_global_norm() {
        let device = Device::flex().autodiff();
        let config = UNetConfig {
            in_channels: 1,
            num_classes: 2,
            base_channels: 2,
            depth: 1,
            input_size: 4,
        };
        let model = config.init(&device);
        let x = Tensor::<4>::random([2, 1, 4, 4], burn::tensor::Distribution::Default, &device);
        let t = Tensor::<4>::ones([2, 2, 4, 4], &device);
        let loss = bce_with_logits(model.forward(x), t) * 1000.0;
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let before = global_norm(&model, &grads)
            .expect("grads")
            .into_scalar::<f32>();
        assert!(before > 1.0, "{before}");
        clip_global_norm(&model, &mut grads, 1.0);
        let after = global_norm(&model, &grads)
            .expect("grads")
            .into_scalar::<f32>();
        assert!((after - 1.0).abs() < 1e-3, "{after}");
        // A norm already below the limit is untouched.
        clip_global_norm(&model, &mut grads, 10.0);
        let again = global_norm(&model, &grads)
            .expect("grads")
            .into_scalar::<f32>();
        assert!((again - after).abs() < 1e-5);
    }
}
