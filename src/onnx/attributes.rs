//! Typed reads of a node's attributes: every reader of ONNX attributes (the codec, the
//! checks made before a runtime sees a file, the receptive-field estimate) goes through
//! here, so a wrong type or a missing attribute reads the same wherever it is found:
//! "Node N (Op), attribute 'a': ...".

use super::pb::{attribute_type as at, AttributeProto, NodeProto};
use anyhow::{Error, Result};

/// The attributes of node `index` of a graph.
#[derive(Clone, Copy)]
pub struct Attributes<'a> {
    node: &'a NodeProto,
    index: usize,
}

impl<'a> Attributes<'a> {
    pub fn of(index: usize, node: &'a NodeProto) -> Attributes<'a> {
        Attributes { node, index }
    }

    pub fn node(&self) -> &'a NodeProto {
        self.node
    }

    /// An error about attribute `name` of this node.
    pub fn error(&self, name: &str, message: impl std::fmt::Display) -> Error {
        AttributeError {
            index: self.index,
            op: self.node.op_type.clone(),
            name: name.to_string(),
            message: message.to_string(),
        }
        .into()
    }

    /// The attribute named `name`, if the node has it, checked to be of type `kind`
    /// (files may leave the type out: 0 is accepted for any).
    fn find(&self, name: &str, kind: i32) -> Result<Option<&'a AttributeProto>> {
        match self.node.attribute.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) if a.r#type == kind || a.r#type == at::UNDEFINED => Ok(Some(a)),
            Some(a) => Err(self.error(
                name,
                format!("has type {}, expected {}", type_name(a.r#type), type_name(kind)),
            )),
        }
    }

    /// A required attribute: an error naming it when it is missing.
    pub fn required<T>(&self, name: &str, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| self.error(name, "is required"))
    }

    pub fn i64(&self, name: &str) -> Result<Option<i64>> {
        match self.find(name, at::INT)? {
            // An untyped attribute holding a list is not one integer.
            Some(a) if !a.ints.is_empty() => Err(self.error(name, "holds a list, expected one integer (INT)")),
            a => Ok(a.map(|a| a.i)),
        }
    }

    pub fn i64_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.i64(name)?.unwrap_or(default))
    }

    pub fn ints(&self, name: &str) -> Result<Option<&'a [i64]>> {
        Ok(self.find(name, at::INTS)?.map(|a| a.ints.as_slice()))
    }

    pub fn ints_or(&self, name: &str, default: &'a [i64]) -> Result<&'a [i64]> {
        Ok(self.ints(name)?.unwrap_or(default))
    }

    pub fn f32(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.find(name, at::FLOAT)?.map(|a| a.f))
    }

    pub fn f32_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.f32(name)?.unwrap_or(default))
    }

    pub fn floats(&self, name: &str) -> Result<Option<&'a [f32]>> {
        Ok(self.find(name, at::FLOATS)?.map(|a| a.floats.as_slice()))
    }

    pub fn string(&self, name: &str) -> Result<Option<&'a str>> {
        self.find(name, at::STRING)?
            .map(|a| std::str::from_utf8(&a.s).map_err(|_| self.error(name, "is not UTF-8")))
            .transpose()
    }

    pub fn string_or(&self, name: &str, default: &'a str) -> Result<&'a str> {
        Ok(self.string(name)?.unwrap_or(default))
    }
}

/// What is wrong with one attribute of one node; it names both, so callers that give
/// errors the node's context leave these as they are (see `in_node`).
#[derive(Debug)]
pub struct AttributeError {
    index: usize,
    op: String,
    name: String,
    message: String,
}

impl std::fmt::Display for AttributeError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "Node {} ({}), attribute '{}': {}",
            self.index, self.op, self.name, self.message
        )
    }
}

impl std::error::Error for AttributeError {}

/// `e` in the context of the node `context` describes, unless it names the node already.
pub fn in_node(e: Error, context: impl FnOnce() -> String) -> Error {
    if e.is::<AttributeError>() {
        e
    } else {
        e.context(context())
    }
}

/// The spec's name of an attribute type code, for messages.
fn type_name(kind: i32) -> String {
    match kind {
        at::FLOAT => "FLOAT".into(),
        at::INT => "INT".into(),
        at::STRING => "STRING".into(),
        at::TENSOR => "TENSOR".into(),
        at::FLOATS => "FLOATS".into(),
        at::INTS => "INTS".into(),
        other => format!("code {other}"),
    }
}

/// Attributes as srgraph writes them, typed.
pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: at::INT,
        i,
        ..Default::default()
    }
}

pub fn ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: at::INTS,
        ints,
        ..Default::default()
    }
}

pub fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: at::STRING,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(attribute: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: "Conv".into(),
            attribute,
            ..Default::default()
        }
    }

    #[test]
    fn reads_typed_values_and_defaults() {
        let n = node(vec![
            int("group", 2),
            ints("pads", vec![1, 1, 1, 1]),
            string("auto_pad", "NOTSET"),
        ]);
        let a = Attributes::of(0, &n);
        assert_eq!(a.i64("group").unwrap(), Some(2));
        assert_eq!(a.i64_or("missing", 1).unwrap(), 1);
        assert_eq!(a.ints("pads").unwrap(), Some(&[1, 1, 1, 1][..]));
        assert_eq!(a.string_or("auto_pad", "x").unwrap(), "NOTSET");
        assert_eq!(a.f32_or("alpha", 0.5).unwrap(), 0.5);
    }

    #[test]
    fn errors_name_the_node_and_the_attribute() {
        let n = node(vec![ints("group", vec![1])]);
        let a = Attributes::of(3, &n);
        let e = a.i64("group").unwrap_err().to_string();
        assert_eq!(e, "Node 3 (Conv), attribute 'group': has type INTS, expected INT");
        let e = a.required("kernel_shape", a.ints("kernel_shape").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "Node 3 (Conv), attribute 'kernel_shape': is required");
    }
}
