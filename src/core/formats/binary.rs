//! The binary store (spec §7.5): the whole file is one string under `data`; the
//! encrypted form is a JSON document.

use super::json::JsonCodec;
use super::{Codec, FormatError, FormatOptions};
use crate::core::secret::Text;
use crate::core::tree::{Mapping, Value};

/// The binary codec.
#[derive(Debug, Clone)]
pub struct BinaryCodec {
    json: JsonCodec,
}

impl BinaryCodec {
    /// A codec; `json_binary_indent` applies to the encrypted form (sops'
    /// `stores.json_binary`, not `stores.json`).
    pub fn new(opts: &FormatOptions) -> Self {
        BinaryCodec {
            json: JsonCodec::new(&FormatOptions {
                json_indent: opts.json_binary_indent,
                ..*opts
            }),
        }
    }
}

impl Codec for BinaryCodec {
    fn parse_plain(&self, input: &[u8]) -> Result<Vec<Mapping>, FormatError> {
        let mut m = Mapping::new();
        m.push("data", Value::Str(Text::new(input.to_vec())));
        Ok(vec![m])
    }

    fn parse_encrypted(
        &self,
        input: &[u8],
    ) -> Result<(Vec<Mapping>, Option<Mapping>), FormatError> {
        self.json.parse_encrypted(input)
    }

    fn emit_plain(&self, docs: &[Mapping]) -> Result<Vec<u8>, FormatError> {
        match docs.first().and_then(|d| d.get("data")) {
            Some(Value::Str(t)) => Ok(t.expose_secret().to_vec()),
            _ => Err(FormatError::Emit {
                format: "binary",
                reason: "a binary file needs a string `data` key at the top level".into(),
            }),
        }
    }

    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError> {
        self.json.emit_encrypted(docs, metadata)
    }

    fn emit_value(&self, _value: &Value) -> Result<Vec<u8>, FormatError> {
        Err(FormatError::Emit {
            format: "binary",
            reason: "--extract is not possible for binary files".into(),
        })
    }
}
