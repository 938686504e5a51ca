//! The YAML store (spec §1.6, §3.4, §6.3, §7.1): go-yaml v3 semantics as sops 3.11
//! uses them. Parsing is in `parse.rs`, scalar resolution in `resolve.rs`, output in
//! `emit.rs`.

pub mod emit;
pub mod parse;
pub mod resolve;

use super::{Codec, FormatError, FormatOptions};
use crate::core::tree::{MapEntry, Mapping, Value};

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

    /// Writes the documents, each followed by `sops: <metadata>` when given (spec §6.3).
    fn write(&self, docs: &[Mapping], metadata: Option<&Mapping>) -> Vec<u8> {
        let mut e = emit::Emitter::new(self.indent);
        let sops = metadata.map(|m| {
            [MapEntry::Pair {
                key: "sops".to_string(),
                value: Value::Map(m.clone()),
            }]
        });
        for (i, d) in docs.iter().enumerate() {
            if i > 0 {
                e.document_separator();
            }
            match &sops {
                None => e.document(d),
                Some(pair) => {
                    e.mapping(&d.entries, 0, false);
                    e.mapping(pair, 0, false);
                }
            }
        }
        e.finish()
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
        Ok(self.write(docs, None))
    }

    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError> {
        Ok(self.write(docs, Some(metadata)))
    }

    fn emit_value(&self, value: &Value) -> Result<Vec<u8>, FormatError> {
        let mut e = emit::Emitter::new(self.indent);
        e.value(value);
        Ok(e.finish())
    }
}
