//! File formats ("stores" in sops): one [`Codec`] per format (spec §6.3, §7).
//!
//! A codec turns bytes into documents ([`Mapping`]s) and back. For encrypted files
//! it also splits off / attaches the `sops` metadata block, which it sees only as a
//! generic [`Mapping`] in the JSON/YAML shape; `wire.rs` turns that into
//! [`crate::core::metadata::Metadata`]. Codecs know nothing of cryptography.

pub mod wire;

use super::tree::{Mapping, Value};
use std::fmt;

/// The five sops stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.yaml` / `.yml`.
    Yaml,
    /// `.json`.
    Json,
    /// `.env`.
    Dotenv,
    /// `.ini`.
    Ini,
    /// Anything else: the whole file is one string under `data` (spec §7.5).
    Binary,
}

impl Format {
    /// The format sops picks for a file name: by extension, binary otherwise (spec §9.2).
    pub fn from_path(path: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else if lower.ends_with(".json") {
            Format::Json
        } else if lower.ends_with(".env") {
            Format::Dotenv
        } else if lower.ends_with(".ini") {
            Format::Ini
        } else {
            Format::Binary
        }
    }

    /// Parses a `--input-type`/`--output-type` value; `None` for an unknown name
    /// (sops then silently falls back to the extension, spec §9.2).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "dotenv" => Some(Format::Dotenv),
            "ini" => Some(Format::Ini),
            "binary" => Some(Format::Binary),
            _ => None,
        }
    }

    /// The sops name of the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

/// Output options from `.sops.yaml` `stores:` or `--indent` (spec §7.1, §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatOptions {
    /// YAML indent; sops' default is 4.
    pub yaml_indent: usize,
    /// JSON indent: `None` is a TAB (sops' `-1`), `Some(n)` is n spaces.
    pub json_indent: Option<usize>,
    /// The indent of the binary store's encrypted JSON (`stores.json_binary`), set
    /// apart from `json_indent` as in sops; same encoding.
    pub json_binary_indent: Option<usize>,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            yaml_indent: 4,
            json_indent: None,
            json_binary_indent: None,
        }
    }
}

/// What went wrong reading or writing a format. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input is not valid for the format (sops exit 2).
    #[error("could not parse {format} input{}: {reason}", at_line(*line))]
    Parse {
        /// Which format.
        format: &'static str,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong (no values).
        reason: String,
    },
    /// A mapping key that is not a string (sops exit 23 on encryption).
    #[error("key at line {line} is a {kind}, not a string; quote it")]
    NonStringKey {
        /// 1-based line.
        line: usize,
        /// What kind of key it is (int, bool, ...).
        kind: &'static str,
    },
    /// An integer outside int64 that go-yaml reads as uint64 (sops exit 23).
    #[error(
        "value at line {line} is an unsigned 64-bit integer, which sops cannot encrypt; quote it"
    )]
    Uint64Value {
        /// 1-based line.
        line: usize,
    },
    /// The input has no document at all (sops exit 92).
    #[error("the input has no document")]
    NoDocuments,
    /// The tree cannot be written in this format (sops exit 4).
    #[error("cannot write {format}: {reason}")]
    Emit {
        /// Which format.
        format: &'static str,
        /// Why (no values).
        reason: String,
    },
    /// A resource limit was hit (size, nesting depth, aliases).
    #[error("{format} input exceeds a limit: {reason}")]
    Limit {
        /// Which format.
        format: &'static str,
        /// Which limit.
        reason: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    match line {
        Some(l) => format!(" at line {l}"),
        None => String::new(),
    }
}

/// Parses and emits one file format. Implementations are pure and stateless
/// apart from their options.
pub trait Codec: Send + Sync + fmt::Debug {
    /// Parses a plaintext file into its documents (YAML may have several).
    fn parse_plain(&self, input: &[u8]) -> Result<Vec<Mapping>, FormatError>;

    /// Parses an encrypted file: the documents without the metadata, and the
    /// metadata block (`None` when the file has none) in its JSON/YAML shape.
    /// dotenv/INI un-flatten `sops_*` keys / the `[sops]` section here (spec §6.4).
    fn parse_encrypted(&self, input: &[u8])
        -> Result<(Vec<Mapping>, Option<Mapping>), FormatError>;

    /// Writes documents as plaintext (what `decrypt` prints).
    fn emit_plain(&self, docs: &[Mapping]) -> Result<Vec<u8>, FormatError>;

    /// Writes encrypted documents with the metadata block attached as this store
    /// places it (spec §6.3).
    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError>;

    /// Writes one value for `decrypt --extract` (spec §7.6). A string is written raw
    /// by the caller; this handles the rest.
    fn emit_value(&self, value: &Value) -> Result<Vec<u8>, FormatError>;
}

pub mod binary;
pub mod dotenv;
pub mod flatten;
pub mod ini;
pub mod json;
pub mod yaml;

/// The codec for a format.
pub fn codec(format: Format, opts: &FormatOptions) -> Box<dyn Codec> {
    match format {
        Format::Yaml => Box::new(yaml::YamlCodec::new(opts)),
        Format::Json => Box::new(json::JsonCodec::new(opts)),
        Format::Binary => Box::new(binary::BinaryCodec::new(opts)),
        Format::Dotenv => Box::new(dotenv::DotenvCodec::new(opts)),
        Format::Ini => Box::new(ini::IniCodec::new(opts)),
    }
}
