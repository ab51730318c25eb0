//! The U-Net as an ONNX graph: the weights read off the Burn module, the nodes that
//! repeat [`UNet::forward`](crate::model::UNet::forward) step for step, the input and
//! output declarations and the metadata.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use super::proto::tensor_shape_proto::dimension::Value as Dim;
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, ValueInfoProto,
};
use super::{BatchSize, ExportError, ExportOptions, INPUT_NAME, OUTPUT_NAME, metadata_keys};
use crate::model::unet::BATCH_NORM_EPSILON;
use crate::model::{UNet, UNetConfig};
use ctseg_core::window::MODEL_WINDOW;

/// ctseg's version; every crate of the workspace shares it.
const CTSEG_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The model's float tensors by their Burn path (`encoders.0.bn1.gamma`, …).
type Weights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads every float tensor of a module with its dotted path.
#[derive(Default)]
struct CollectWeights {
    path: Vec<String>,
    weights: Weights,
}

impl ModuleVisitor for CollectWeights {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let dims = tensor.dims().to_vec();
        let values: Vec<f32> = tensor.into_data().iter::<f32>().collect();
        self.weights.insert(self.path.join("."), (dims, values));
    }
}

/// The weights of `model` by Burn path.
fn collect_weights(model: &UNet) -> Weights {
    let mut collector = CollectWeights::default();
    model.visit(&mut collector);
    collector.weights
}

/// Builds the graph: the model's weights not yet placed, the nodes so far and the
/// initializers (named as in the safetensors file).
struct GraphBuilder {
    weights: Weights,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    /// Move the Burn tensor `burn_path` into the initializers as `onnx_name`,
    /// checking its shape.
    fn initializer(
        &mut self,
        burn_path: &str,
        onnx_name: &str,
        shape: &[usize],
    ) -> Result<String, ExportError> {
        let (dims, values) =
            self.weights
                .remove(burn_path)
                .ok_or_else(|| ExportError::MissingTensor {
                    name: burn_path.to_string(),
                })?;
        if dims != shape || values.len() != shape.iter().product::<usize>() {
            return Err(ExportError::TensorShape {
                name: burn_path.to_string(),
                expected: shape.to_vec(),
                found: dims,
            });
        }
        self.initializers
            .push(TensorProto::float32(onnx_name, &dims, &values));
        Ok(onnx_name.to_string())
    }

    /// Append a node named `name` whose one output is `output`.
    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        output: &str,
        attribute: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: Some(name.to_string()),
            op_type: Some(op_type.to_string()),
            attribute,
            ..Default::default()
        });
        output.to_string()
    }

    /// `Conv` with a `kernel`×`kernel` kernel, stride 1 and `pad` pixels of zero
    /// padding on every side (`prefix.weight`, `prefix.bias`).
    fn conv(
        &mut self,
        prefix: &str,
        x: String,
        [in_c, out_c]: [usize; 2],
        kernel: usize,
        pad: i64,
    ) -> Result<String, ExportError> {
        let weight = self.initializer(
            &format!("{prefix}.weight"),
            &format!("{prefix}.weight"),
            &[out_c, in_c, kernel, kernel],
        )?;
        let mut inputs = vec![x, weight];
        if self.weights.contains_key(&format!("{prefix}.bias")) {
            inputs.push(self.initializer(
                &format!("{prefix}.bias"),
                &format!("{prefix}.bias"),
                &[out_c],
            )?);
        }
        let k = kernel as i64;
        let attributes = vec![
            AttributeProto::ints("kernel_shape", &[k, k]),
            AttributeProto::ints("strides", &[1, 1]),
            AttributeProto::ints("pads", &[pad, pad, pad, pad]),
            AttributeProto::ints("dilations", &[1, 1]),
            AttributeProto::int("group", 1),
        ];
        Ok(self.node("Conv", prefix, inputs, &format!("{prefix}.out"), attributes))
    }

    /// `BatchNormalization` in inference form (running statistics), then `Relu`.
    /// Initializers take PyTorch's names (`weight`, `bias`) for Burn's `gamma`, `beta`.
    fn batch_norm_relu(
        &mut self,
        prefix: &str,
        x: String,
        channels: usize,
    ) -> Result<String, ExportError> {
        let mut inputs = vec![x];
        for (burn, onnx) in [
            ("gamma", "weight"),
            ("beta", "bias"),
            ("running_mean", "running_mean"),
            ("running_var", "running_var"),
        ] {
            inputs.push(self.initializer(
                &format!("{prefix}.{burn}"),
                &format!("{prefix}.{onnx}"),
                &[channels],
            )?);
        }
        let normalized = self.node(
            "BatchNormalization",
            prefix,
            inputs,
            &format!("{prefix}.out"),
            vec![AttributeProto::float("epsilon", BATCH_NORM_EPSILON as f32)],
        );
        Ok(self.node(
            "Relu",
            &format!("{prefix}.relu"),
            vec![normalized],
            &format!("{prefix}.relu.out"),
            Vec::new(),
        ))
    }

    /// Conv3×3 → BatchNorm → ReLU, twice.
    fn double_conv(
        &mut self,
        prefix: &str,
        x: String,
        [in_c, out_c]: [usize; 2],
    ) -> Result<String, ExportError> {
        let x = self.conv(&format!("{prefix}.conv1"), x, [in_c, out_c], 3, 1)?;
        let x = self.batch_norm_relu(&format!("{prefix}.bn1"), x, out_c)?;
        let x = self.conv(&format!("{prefix}.conv2"), x, [out_c, out_c], 3, 1)?;
        self.batch_norm_relu(&format!("{prefix}.bn2"), x, out_c)
    }

    /// 2×2 max-pooling with stride 2.
    fn max_pool(&mut self, name: &str, x: String) -> String {
        let attributes = vec![
            AttributeProto::ints("kernel_shape", &[2, 2]),
            AttributeProto::ints("strides", &[2, 2]),
            AttributeProto::ints("pads", &[0, 0, 0, 0]),
        ];
        self.node("MaxPool", name, vec![x], &format!("{name}.out"), attributes)
    }

    /// 2×2 transposed convolution with stride 2 (doubles the side).
    fn up(
        &mut self,
        prefix: &str,
        x: String,
        [in_c, out_c]: [usize; 2],
    ) -> Result<String, ExportError> {
        // Burn and ONNX both store transposed-convolution weights as [in, out, kh, kw].
        let weight = self.initializer(
            &format!("{prefix}.weight"),
            &format!("{prefix}.weight"),
            &[in_c, out_c, 2, 2],
        )?;
        let mut inputs = vec![x, weight];
        if self.weights.contains_key(&format!("{prefix}.bias")) {
            inputs.push(self.initializer(
                &format!("{prefix}.bias"),
                &format!("{prefix}.bias"),
                &[out_c],
            )?);
        }
        let attributes = vec![
            AttributeProto::ints("kernel_shape", &[2, 2]),
            AttributeProto::ints("strides", &[2, 2]),
            AttributeProto::ints("pads", &[0, 0, 0, 0]),
            AttributeProto::ints("dilations", &[1, 1]),
            AttributeProto::int("group", 1),
        ];
        Ok(self.node(
            "ConvTranspose",
            prefix,
            inputs,
            &format!("{prefix}.out"),
            attributes,
        ))
    }
}

/// The graph of [`UNet::forward`]: encoder blocks with skips and pooling, the
/// bottleneck, transposed-convolution upsampling concatenated after the skip
/// (`[skip, upsampled]` on the channel axis), decoder blocks, the 1×1 head.
fn build_graph(
    model: &UNet,
    config: &UNetConfig,
    batch: BatchSize,
) -> Result<GraphProto, ExportError> {
    let mut g = GraphBuilder {
        weights: collect_weights(model),
        nodes: Vec::new(),
        initializers: Vec::new(),
    };
    let widths = config.encoder_widths();
    let mut skips = Vec::with_capacity(widths.len());
    let mut x = INPUT_NAME.to_string();
    let mut in_c = config.in_channels;
    for (i, &w) in widths.iter().enumerate() {
        x = g.double_conv(&format!("encoders.{i}"), x, [in_c, w])?;
        skips.push(x.clone());
        x = g.max_pool(&format!("pool.{i}"), x);
        in_c = w;
    }
    let bottom = config.base_channels << config.depth;
    x = g.double_conv("bottleneck", x, [in_c, bottom])?;
    let mut c = bottom;
    for (i, (&w, skip)) in widths.iter().rev().zip(skips.into_iter().rev()).enumerate() {
        let upsampled = g.up(&format!("ups.{i}"), x, [c, w])?;
        let joined = g.node(
            "Concat",
            &format!("concat.{i}"),
            vec![skip, upsampled],
            &format!("concat.{i}.out"),
            vec![AttributeProto::int("axis", 1)],
        );
        x = g.double_conv(&format!("decoders.{i}"), joined, [2 * w, w])?;
        c = w;
    }
    g.conv("head", x, [c, config.num_classes], 1, 0)?;
    // The head's output is the graph output: rename it rather than add an Identity.
    if let Some(head) = g.nodes.last_mut() {
        head.output = vec![OUTPUT_NAME.to_string()];
    }
    if let Some(name) = g.weights.keys().next() {
        return Err(ExportError::UnusedTensor { name: name.clone() });
    }

    let batch_dim = match batch {
        BatchSize::Dynamic => Dim::DimParam("batch".into()),
        BatchSize::Fixed(n) => Dim::DimValue(n as i64),
    };
    let side = Dim::DimValue(config.input_size as i64);
    let input = ValueInfoProto::float32_tensor(
        INPUT_NAME,
        vec![
            batch_dim.clone(),
            Dim::DimValue(config.in_channels as i64),
            side.clone(),
            side.clone(),
        ],
    );
    let output = ValueInfoProto::float32_tensor(
        OUTPUT_NAME,
        vec![
            batch_dim,
            Dim::DimValue(config.num_classes as i64),
            side.clone(),
            side,
        ],
    );
    Ok(GraphProto {
        node: g.nodes,
        name: Some("ctseg_unet".into()),
        initializer: g.initializers,
        doc_string: Some(format!(
            "ctseg 2-D U-Net: base {}, depth {}, {} classes, {}x{} input",
            config.base_channels,
            config.depth,
            config.num_classes,
            config.input_size,
            config.input_size
        )),
        input: vec![input],
        output: vec![output],
        value_info: Vec::new(),
    })
}

/// `metadata_props`: how to make the input, what the output channels are, and
/// which ctseg wrote the file.
fn metadata(config: &UNetConfig) -> Result<Vec<StringStringEntryProto>, ExportError> {
    let catalog = ctseg_core::structures::catalog();
    // Channel c is label c + 1 (as in training's one-hot targets).
    let labels: Vec<String> = (1..=config.num_classes)
        .map(|label| match u8::try_from(label) {
            Ok(label) => catalog.name_of(label),
            Err(_) => format!("label_{label}"),
        })
        .collect();
    let json = |what: &str, value: serde_json::Result<String>| {
        value.map_err(|e| ExportError::Metadata {
            detail: format!("cannot encode {what}: {e}"),
        })
    };
    let (low, high) = (MODEL_WINDOW.low(), MODEL_WINDOW.high());
    Ok(vec![
        StringStringEntryProto::new(metadata_keys::INPUT_SIZE, config.input_size.to_string()),
        StringStringEntryProto::new(
            metadata_keys::WINDOW_HU,
            json("the window", serde_json::to_string(&[low, high]))?,
        ),
        StringStringEntryProto::new(
            metadata_keys::PREPROCESSING,
            format!(
                "one axial CT slice in canonical L-P-S voxel order, HU clipped to [{low}, {high}] and scaled to [0, 1] (x = clamp((HU - ({low})) / {}, 0, 1)), resized bilinearly to {size}x{size}",
                high - low,
                size = config.input_size
            ),
        ),
        StringStringEntryProto::new(
            metadata_keys::OUTPUT,
            "logits [batch, classes, h, w]: channel c is the structure with label c + 1 (labels); probability = sigmoid(logit) per channel (multi-label); ctseg labels a pixel with the most probable structure above 0.5, else background (0)",
        ),
        StringStringEntryProto::new(
            metadata_keys::LABELS,
            json("the label names", serde_json::to_string(&labels))?,
        ),
        StringStringEntryProto::new(
            metadata_keys::MODEL_CONFIG,
            json("the model configuration", serde_json::to_string(config))?,
        ),
        StringStringEntryProto::new(metadata_keys::VERSION, CTSEG_VERSION),
    ])
}

/// The ONNX model of `model` (configuration `config`) with `options`.
pub fn unet_to_onnx(
    model: &UNet,
    config: &UNetConfig,
    options: &ExportOptions,
) -> Result<ModelProto, ExportError> {
    options.validate()?;
    config.validate().map_err(|detail| ExportError::Metadata {
        detail: format!("bad model configuration: {detail}"),
    })?;
    Ok(ModelProto {
        ir_version: Some(super::ir_version_for(options.opset)),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(options.opset),
        }],
        producer_name: Some("ctseg".into()),
        producer_version: Some(CTSEG_VERSION.into()),
        domain: None,
        model_version: None,
        doc_string: Some(
            "CT organ segmentation U-Net exported by ctseg: input 'image' (windowed CT slices), output 'logits' (one per structure; sigmoid gives probabilities). See metadata_props."
                .into(),
        ),
        graph: Some(build_graph(model, config, options.batch)?),
        metadata_props: metadata(config)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::proto::type_proto;
    use prost::Message;

    fn tiny() -> UNetConfig {
        UNetConfig {
            in_channels: 1,
            num_classes: 5,
            base_channels: 2,
            depth: 2,
            input_size: 16,
        }
    }

    fn export(config: &UNetConfig, options: &ExportOptions) -> ModelProto {
        let model = config.init_seeded(&Device::flex(), 3).valid();
        unet_to_onnx(&model, config, options).expect("exports")
    }

    fn dims(info: &ValueInfoProto) -> Vec<Dim> {
        info.dims()
            .expect("a tensor")
            .iter()
            .map(|d| d.value.clone().expect("sized"))
            .collect()
    }

    #[test]
    fn graph_follows_the_forward_pass() {
        let config = tiny();
        let onnx = export(&config, &ExportOptions::default());
        let graph = onnx.graph.as_ref().expect("graph");
        let count = |op: &str| {
            graph
                .node
                .iter()
                .filter(|n| n.op_type.as_deref() == Some(op))
                .count()
        };
        // (depth encoders + bottleneck + depth decoders) × 2 convolutions, + the head.
        let blocks = 2 * config.depth + 1;
        assert_eq!(count("Conv"), 2 * blocks + 1);
        assert_eq!(count("BatchNormalization"), 2 * blocks);
        assert_eq!(count("Relu"), 2 * blocks);
        assert_eq!(count("MaxPool"), config.depth);
        assert_eq!(count("ConvTranspose"), config.depth);
        assert_eq!(count("Concat"), config.depth);
        assert_eq!(graph.node.len(), 2 * blocks * 3 + 1 + 3 * config.depth);
        let last = graph.node.last().expect("nodes");
        assert_eq!(last.output, vec![OUTPUT_NAME.to_string()]);
        assert_eq!(graph.node[0].input[0], INPUT_NAME);
        // Every parameter and running statistic becomes one initializer.
        let values: usize = graph
            .initializer
            .iter()
            .map(|t| t.dims.iter().product::<i64>() as usize)
            .sum();
        let bn_channels = 2 * (2 + 4) + 2 * 8 + 2 * (4 + 2);
        assert_eq!(values, config.num_params() + 2 * bn_channels);
        assert!(
            graph
                .initializer
                .iter()
                .any(|t| t.name.as_deref() == Some("encoders.0.bn1.running_var"))
        );
        // Every node input is the graph input, an initializer or an earlier output.
        let mut known: Vec<String> = graph
            .initializer
            .iter()
            .filter_map(|t| t.name.clone())
            .collect();
        known.push(INPUT_NAME.into());
        for node in &graph.node {
            for input in &node.input {
                assert!(known.contains(input), "{input} used before it is defined");
            }
            known.extend(node.output.iter().cloned());
        }
    }

    #[test]
    fn batch_is_symbolic_or_fixed() {
        let config = tiny();
        let dynamic = export(&config, &ExportOptions::default());
        let graph = dynamic.graph.expect("graph");
        assert_eq!(
            dims(&graph.input[0]),
            vec![
                Dim::DimParam("batch".into()),
                Dim::DimValue(1),
                Dim::DimValue(16),
                Dim::DimValue(16)
            ]
        );
        assert_eq!(
            dims(&graph.output[0]),
            vec![
                Dim::DimParam("batch".into()),
                Dim::DimValue(5),
                Dim::DimValue(16),
                Dim::DimValue(16)
            ]
        );
        let fixed = export(
            &config,
            &ExportOptions {
                batch: BatchSize::Fixed(4),
                opset: 11,
            },
        );
        assert_eq!(fixed.ir_version, Some(8));
        assert_eq!(fixed.opset_import[0].version, Some(11));
        let graph = fixed.graph.expect("graph");
        assert_eq!(dims(&graph.output[0])[0], Dim::DimValue(4));
        let Some(type_proto::Value::TensorType(t)) =
            graph.input[0].r#type.as_ref().and_then(|t| t.value.clone())
        else {
            panic!("the input is a tensor");
        };
        assert_eq!(
            t.elem_type,
            Some(crate::export::proto::DataType::Float as i32)
        );
    }

    #[test]
    fn weights_and_metadata_survive_encoding() {
        let config = UNetConfig {
            num_classes: 117,
            ..tiny()
        };
        let model = config.init_seeded(&Device::flex(), 5).valid();
        let onnx = unet_to_onnx(&model, &config, &ExportOptions::default()).expect("exports");
        let bytes = onnx.encode_to_vec();
        let back = ModelProto::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, onnx);
        let weights = collect_weights(&model);
        let graph = back.graph.expect("graph");
        let head = graph
            .initializer
            .iter()
            .find(|t| t.name.as_deref() == Some("head.bias"))
            .expect("head bias");
        assert_eq!(head.float32_values(), Some(weights["head.bias"].1.clone()));
        let gamma = graph
            .initializer
            .iter()
            .find(|t| t.name.as_deref() == Some("decoders.1.bn2.weight"))
            .expect("a BatchNorm scale");
        assert_eq!(
            gamma.float32_values(),
            Some(weights["decoders.1.bn2.gamma"].1.clone())
        );
        let meta: BTreeMap<String, String> = back
            .metadata_props
            .iter()
            .map(|e| {
                (
                    e.key.clone().unwrap_or_default(),
                    e.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        let labels: Vec<String> =
            serde_json::from_str(&meta[metadata_keys::LABELS]).expect("labels are JSON");
        assert_eq!(labels.len(), 117);
        assert_eq!(labels[0], ctseg_core::structures::catalog().name_of(1));
        assert_eq!(meta[metadata_keys::INPUT_SIZE], "16");
        assert_eq!(meta[metadata_keys::WINDOW_HU], "[-200.0,300.0]");
        assert_eq!(meta[metadata_keys::VERSION], CTSEG_VERSION);
        assert_eq!(back.producer_name.as_deref(), Some("ctseg"));
    }
}
