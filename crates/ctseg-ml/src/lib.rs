//! ctseg-ml: the model layer on Burn — run-time device choice ([`backend`]), the
//! 2-D U-Net, its losses and checkpoints ([`model`]), augmentation ([`augment`]), the
//! preprocessed slice cache and batch loader ([`data`]), whole-volume inference
//! ([`infer`]), the training engine ([`train`]), throughput measurement
//! ([`bench`]) and the ONNX export ([`export`]). It builds on `ctseg-core` and knows
//! nothing of egui.

#![warn(missing_docs)]

pub mod augment;
pub mod backend;
pub mod bench;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod infer;
pub mod model;
pub mod parity;
pub mod train;
