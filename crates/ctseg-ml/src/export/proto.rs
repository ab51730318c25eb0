//! The part of ONNX's protobuf schema (`onnx/onnx.proto`, proto2, ONNX 1.23) that the
//! exporter writes, as hand-written `prost` messages.
//!
//! Field numbers, types and packing follow `onnx.proto` exactly; messages and fields
//! the exporter never writes are left out (a decoder skips unknown fields, so files
//! written by other tools still decode). In proto2 a `repeated` number is unpacked
//! unless the schema says `[packed = true]`, hence the `packed = "false"` below.

/// `onnx.TensorProto.DataType` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// No type.
    Undefined = 0,
    /// 32-bit IEEE float.
    Float = 1,
    /// 64-bit signed integer.
    Int64 = 7,
}

/// `onnx.AttributeProto.AttributeType` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// No type.
    Undefined = 0,
    /// One float (`f`).
    Float = 1,
    /// One integer (`i`).
    Int = 2,
    /// One byte string (`s`).
    String = 3,
    /// A list of floats (`floats`).
    Floats = 6,
    /// A list of integers (`ints`).
    Ints = 7,
}

/// `onnx.ModelProto`: the file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The IR version the file follows.
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// The operator sets the graph uses.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// The tool that wrote the file.
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// Its version.
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// Reverse-DNS namespace of the model.
    #[prost(string, optional, tag = "4")]
    pub domain: Option<String>,
    /// Version of the model itself.
    #[prost(int64, optional, tag = "5")]
    pub model_version: Option<i64>,
    /// Human-readable description.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// The computation.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Named strings: ctseg's preprocessing, labels and version.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `onnx.OperatorSetIdProto`: one imported operator set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Operator-set domain; empty for the default `ai.onnx` set.
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// Operator-set version.
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `onnx.StringStringEntryProto`: one key/value pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// The key.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// The value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `onnx.GraphProto`: nodes in topological order, weights, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The nodes, topologically sorted.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// Constant tensors (the weights).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Human-readable description.
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types and shapes of intermediate values.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// `onnx.NodeProto`: one operator call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Names of the input values.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the output values.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name.
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// Operator, e.g. `Conv`.
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// Operator-set domain; empty for `ai.onnx`.
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
    /// Operator attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Human-readable description.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
}

/// `onnx.AttributeProto`: one named operator attribute.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name, e.g. `kernel_shape`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Human-readable description.
    #[prost(string, optional, tag = "13")]
    pub doc_string: Option<String>,
    /// Which value field is set.
    #[prost(enumeration = "AttributeType", optional, tag = "20")]
    pub r#type: Option<i32>,
    /// A float value.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// An integer value.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// A UTF-8 string value.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// A list of floats.
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// A list of integers.
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// A list of UTF-8 strings.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

/// `onnx.TensorProto`: a constant tensor (the exporter uses `raw_data`, little-endian).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// Element type ([`DataType`]).
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// Float elements (when `raw_data` is not used).
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Int64 elements (when `raw_data` is not used).
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Tensor name (the value it defines).
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// Human-readable description.
    #[prost(string, optional, tag = "12")]
    pub doc_string: Option<String>,
    /// The elements as little-endian bytes, row-major.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

/// `onnx.ValueInfoProto`: a named value with its type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Its type and shape.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Human-readable description.
    #[prost(string, optional, tag = "3")]
    pub doc_string: Option<String>,
}

/// `onnx.TypeProto`: the type of a value (only tensors here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The kind of type.
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
    /// Denotation of the type, e.g. `TENSOR`.
    #[prost(string, optional, tag = "6")]
    pub denotation: Option<String>,
}

/// Nested messages of [`TypeProto`].
pub mod type_proto {
    /// `onnx.TypeProto.Tensor`: element type and shape of a tensor.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// Element type ([`super::DataType`]).
        #[prost(int32, optional, tag = "1")]
        pub elem_type: Option<i32>,
        /// Shape.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }

    /// The `value` oneof of `onnx.TypeProto` (only `tensor_type`).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A dense tensor.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }
}

/// `onnx.TensorShapeProto`: the dimensions of a tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// One entry per axis.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// Nested messages of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// `onnx.TensorShapeProto.Dimension`: a fixed size or a symbolic name.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// The size.
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
        /// Meaning of the axis, e.g. `DATA_BATCH`.
        #[prost(string, optional, tag = "3")]
        pub denotation: Option<String>,
    }

    /// Nested types of [`Dimension`].
    pub mod dimension {
        /// The `value` oneof of `onnx.TensorShapeProto.Dimension`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A fixed size.
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// A symbolic size, e.g. `batch`.
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

impl AttributeProto {
    /// An integer attribute.
    pub fn int(name: &str, value: i64) -> Self {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(value),
            ..Default::default()
        }
    }

    /// An integer-list attribute.
    pub fn ints(name: &str, values: &[i64]) -> Self {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    /// A float attribute.
    pub fn float(name: &str, value: f32) -> Self {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(value),
            ..Default::default()
        }
    }
}

impl TensorProto {
    /// A float32 tensor named `name` with `dims`, stored as little-endian `raw_data`.
    pub fn float32(name: &str, dims: &[usize], values: &[f32]) -> Self {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.into()),
            raw_data: Some(raw),
            ..Default::default()
        }
    }

    /// The elements of a float32 tensor (from `raw_data` or `float_data`).
    pub fn float32_values(&self) -> Option<Vec<f32>> {
        if self.data_type != Some(DataType::Float as i32) {
            return None;
        }
        match &self.raw_data {
            Some(raw) if raw.len() % 4 == 0 => Some(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Some(_) => None,
            None => Some(self.float_data.clone()),
        }
    }
}

impl ValueInfoProto {
    /// A float32 tensor value named `name` whose axes are `dims` (fixed or symbolic).
    pub fn float32_tensor(name: &str, dims: Vec<tensor_shape_proto::dimension::Value>) -> Self {
        let dim = dims
            .into_iter()
            .map(|value| tensor_shape_proto::Dimension {
                value: Some(value),
                denotation: None,
            })
            .collect();
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(DataType::Float as i32),
                    shape: Some(TensorShapeProto { dim }),
                })),
                denotation: None,
            }),
            doc_string: None,
        }
    }

    /// The axes of a tensor value (`None` when it is not a tensor with a shape).
    pub fn dims(&self) -> Option<&[tensor_shape_proto::Dimension]> {
        match &self.r#type.as_ref()?.value {
            Some(type_proto::Value::TensorType(t)) => Some(&t.shape.as_ref()?.dim),
            None => None,
        }
    }
}

impl StringStringEntryProto {
    /// A key/value pair.
    pub fn new(key: &str, value: impl Into<String>) -> Self {
        StringStringEntryProto {
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The bytes of hand-checked fields: tags and wire types as `onnx.proto` defines
    /// them (what protoc would write for the same message).
    #[test]
    fn field_numbers_and_wire_types_match_onnx_proto() {
        let opset = OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        };
        // domain: field 1, length-delimited (0x0a), empty; version: field 2, varint.
        assert_eq!(opset.encode_to_vec(), vec![0x0a, 0x00, 0x10, 17]);

        let model = ModelProto {
            ir_version: Some(8),
            metadata_props: vec![StringStringEntryProto::new("k", "v")],
            ..Default::default()
        };
        // ir_version: field 1 varint; metadata_props: field 14 (0x72) message.
        assert_eq!(
            model.encode_to_vec(),
            vec![0x08, 8, 0x72, 6, 0x0a, 1, b'k', 0x12, 1, b'v']
        );

        // AttributeProto.ints is proto2 `repeated int64` without [packed=true]: one
        // tag (field 8, varint: 0x40) per element; type is field 20 (0xa0 0x01).
        let attribute = AttributeProto::ints("p", &[1, 2]);
        assert_eq!(
            attribute.encode_to_vec(),
            vec![0x0a, 1, b'p', 0x40, 1, 0x40, 2, 0xa0, 0x01, 7]
        );

        // TensorProto.dims likewise unpacked (field 1: 0x08); raw_data is field 9 (0x4a).
        let tensor = TensorProto::float32("w", &[1], &[1.0]);
        assert_eq!(
            tensor.encode_to_vec(),
            vec![
                0x08, 1, 0x10, 1, 0x42, 1, b'w', 0x4a, 4, 0x00, 0x00, 0x80, 0x3f
            ]
        );

        let dim = tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimParam("b".into())),
            denotation: None,
        };
        assert_eq!(dim.encode_to_vec(), vec![0x12, 1, b'b']);
    }

    #[test]
    fn a_model_decodes_back_to_itself() {
        use tensor_shape_proto::dimension::Value::{DimParam, DimValue};
        let model = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            }],
            producer_name: Some("ctseg".into()),
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["x".into(), "w".into()],
                    output: vec!["y".into()],
                    op_type: Some("Conv".into()),
                    attribute: vec![
                        AttributeProto::ints("pads", &[1, 1, 1, 1]),
                        AttributeProto::float("epsilon", 1e-5),
                        AttributeProto::int("group", 1),
                    ],
                    ..Default::default()
                }],
                initializer: vec![TensorProto::float32("w", &[1, 1, 1, 1], &[0.5])],
                input: vec![ValueInfoProto::float32_tensor(
                    "x",
                    vec![DimParam("batch".into()), DimValue(1)],
                )],
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = model.encode_to_vec();
        let back = ModelProto::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, model);
        let graph = back.graph.expect("graph");
        assert_eq!(graph.initializer[0].float32_values(), Some(vec![0.5]));
        let dims = graph.input[0].dims().expect("a tensor");
        assert_eq!(dims[0].value, Some(DimParam("batch".into())));
    }
}
