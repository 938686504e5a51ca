//! The YAML store (spec §1.6, §3.4, §6.3, §7.1): go-yaml v3 semantics as sops 3.11
//! uses them. Parsing is in `parse.rs`, scalar resolution in `resolve.rs`, output in
//! `emit.rs`.

pub mod emit;
pub mod parse;
pub mod resolve;

use super::{Codec, FormatError, FormatOptions};
use crate::core::tree::{Mapping, Value};

/// The YAML codec.
#[derive(Debug, Clone)]
pub struct YamlCodec {
    indent: usize,
}

impl YamlCodec {
    /// A codec with the given options (`yaml_indent`, default 4).
    pub fn new(opts: &FormatOptions) -> Self {
        YamlCodec {
            indent: if opts.yaml_indent == 0 {
                4
            } else {
                opts.yaml_indent
            },
        }
    }

    fn write(&self, docs: &[Mapping]) -> Vec<u8> {
        let mut out = String::new();
        for (i, d) in docs.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            let mut e = emit::Emitter::new(self.indent);
            e.document(d);
            out.push_str(&e.finish());
        }
        out.into_bytes()
    }
}

impl Codec for YamlCodec {
    fn parse_plain(&self, input: &[u8]) -> Result<Vec<Mapping>, FormatError> {
        parse::parse_documents(input)
    }

    fn parse_encrypted(
        &self,
        input: &[u8],
    ) -> Result<(Vec<Mapping>, Option<Mapping>), FormatError> {
        let mut docs = parse::parse_documents(input)?;
        // §6.3: metadata from the first document; `sops` removed from every document.
        let mut meta = None;
        for (i, d) in docs.iter_mut().enumerate() {
            let removed = d.remove("sops");
            if i == 0 {
                if let Some(Value::Map(m)) = removed {
                    meta = Some(m);
                }
            }
        }
        Ok((docs, meta))
    }

    fn emit_plain(&self, docs: &[Mapping]) -> Result<Vec<u8>, FormatError> {
        Ok(self.write(docs))
    }

    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError> {
        let with_meta: Vec<Mapping> = docs
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d.push("sops", Value::Map(metadata.clone()));
                d
            })
            .collect();
        Ok(self.write(&with_meta))
    }

    fn emit_value(&self, value: &Value) -> Result<Vec<u8>, FormatError> {
        let mut e = emit::Emitter::new(self.indent);
        e.value(value);
        Ok(e.finish().into_bytes())
    }
}
