//! `.sops.yaml`: creation rules and store options (spec §8), read from an already
//! parsed YAML document. Finding the file is the caller's job (I/O).

use super::formats::FormatOptions;
use super::metadata::SelectionRule;
use super::tree::{Mapping, SeqEntry, Value};
// The rules' regex type: the same engine as `regex`, without a full DFA per pattern.
use super::rules::Regex;

/// One `creation_rules` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreationRule {
    /// Unanchored regex matched against the path relative to the config's directory.
    pub path_regex: Option<String>,
    /// Age recipients per key group (one group from the flat `age:` field).
    pub age_groups: Vec<Vec<String>>,
    /// Shamir threshold.
    pub shamir_threshold: Option<usize>,
    /// The selection rule, if the rule sets one.
    pub rule: Option<SelectionRule>,
    /// Hash only encrypted values.
    pub mac_only_encrypted: bool,
}

/// A parsed `.sops.yaml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SopsConfig {
    /// Rules in file order; the first match wins.
    pub creation_rules: Vec<CreationRule>,
    /// Output options from `stores:`.
    pub stores: FormatOptions,
}

/// What is wrong in `.sops.yaml` (sops exit 1). Names the rule by index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{where_}: {reason}")]
pub struct ConfigError {
    /// e.g. `creation_rules[2].path_regex`.
    pub where_: String,
    /// What is wrong.
    pub reason: String,
}

fn err(where_: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        where_: where_.into(),
        reason: reason.into(),
    }
}

fn string_list(v: &Value, at: &str) -> Result<Vec<String>, ConfigError> {
    match v {
        // A comma-separated string (whitespace trimmed) or, since 3.11, a list.
        Value::Str(t) => Ok(t
            .as_str()
            .ok_or_else(|| err(at, "not UTF-8"))?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Value::Seq(s) => s
            .items
            .iter()
            .filter_map(|i| match i {
                SeqEntry::Value(v) => Some(v),
                SeqEntry::Comment(_) => None,
            })
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| err(at, "list entries must be strings"))
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(err(at, "expected a string or a list of strings")),
    }
}

fn usize_of(v: &Value, at: &str) -> Result<usize, ConfigError> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        Value::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Ok(*f as usize),
        _ => Err(err(at, "expected a non-negative integer")),
    }
}

fn parse_rule(m: &Mapping, at: &str) -> Result<CreationRule, ConfigError> {
    let mut rule = CreationRule::default();
    for (k, v) in m.pairs() {
        let here = format!("{at}.{k}");
        match k {
            "path_regex" => {
                let re = v.as_str().ok_or_else(|| err(&here, "expected a string"))?;
                Regex::new(re).map_err(|e| err(&here, e))?;
                rule.path_regex = Some(re.to_string());
            }
            "age" => {
                let list = string_list(v, &here)?;
                if !list.is_empty() {
                    rule.age_groups = vec![list];
                }
            }
            "key_groups" => {
                let Value::Seq(groups) = v else {
                    return Err(err(&here, "expected a list of key groups"));
                };
                let mut out = Vec::new();
                for (i, g) in groups
                    .items
                    .iter()
                    .filter_map(|i| {
                        if let SeqEntry::Value(v) = i {
                            Some(v)
                        } else {
                            None
                        }
                    })
                    .enumerate()
                {
                    let gm = g
                        .as_map()
                        .ok_or_else(|| err(format!("{here}[{i}]"), "expected a mapping"))?;
                    let mut keys: Vec<String> = Vec::new();
                    for (gk, gv) in gm.pairs() {
                        match gk {
                            "age" => {
                                for r in string_list(gv, &format!("{here}[{i}].age"))? {
                                    // Duplicates inside a group are removed (§8.2).
                                    if !keys.contains(&r) {
                                        keys.push(r);
                                    }
                                }
                            }
                            other => {
                                return Err(err(
                                    format!("{here}[{i}].{other}"),
                                    "sopsync supports age keys only; use the sops CLI for pgp/kms/gcp_kms/azure_keyvault/hc_vault",
                                ))
                            }
                        }
                    }
                    out.push(keys);
                }
                rule.age_groups = out;
            }
            "shamir_threshold" => {
                rule.shamir_threshold = Some(usize_of(v, &here)?).filter(|n| *n != 0)
            }
            "mac_only_encrypted" => {
                rule.mac_only_encrypted = matches!(v, Value::Bool(true));
            }
            "pgp"
            | "kms"
            | "gcp_kms"
            | "azure_keyvault"
            | "hc_vault_transit_uri"
            | "aws_profile"
                if !matches!(v, Value::Null) && v.as_str() != Some("") =>
            {
                return Err(err(
                    &here,
                    "sopsync supports age keys only; use the sops CLI for this key type",
                ));
            }
            key if SelectionRule::from_key(key, String::new()).is_some() => {
                let pattern = v
                    .as_str()
                    .ok_or_else(|| err(&here, "expected a string"))?
                    .to_string();
                if let Some(prev) = &rule.rule {
                    return Err(err(
                        &here,
                        format!(
                            "a rule may set only one of the selection options; `{}` is already set",
                            prev.key()
                        ),
                    ));
                }
                rule.rule = SelectionRule::from_key(key, pattern);
            }
            _ => {}
        }
    }
    Ok(rule)
}

impl SopsConfig {
    /// Reads `.sops.yaml` from its first YAML document.
    pub fn from_document(doc: &Mapping) -> Result<SopsConfig, ConfigError> {
        let mut cfg = SopsConfig::default();
        if let Some(v) = doc.get("creation_rules") {
            let Value::Seq(rules) = v else {
                return Err(err("creation_rules", "expected a list"));
            };
            for (i, r) in rules
                .items
                .iter()
                .filter_map(|i| {
                    if let SeqEntry::Value(v) = i {
                        Some(v)
                    } else {
                        None
                    }
                })
                .enumerate()
            {
                let at = format!("creation_rules[{i}]");
                let m = r.as_map().ok_or_else(|| err(&at, "expected a mapping"))?;
                cfg.creation_rules.push(parse_rule(m, &at)?);
            }
        }
        if let Some(Value::Map(stores)) = doc.get("stores") {
            if let Some(Value::Int(n)) = stores
                .get("yaml")
                .and_then(|y| y.as_map())
                .and_then(|y| y.get("indent"))
            {
                if *n < 0 {
                    return Err(err("stores.yaml.indent", "must not be negative"));
                }
                if *n > 0 {
                    cfg.stores.yaml_indent = *n as usize;
                }
            }
            // sops keeps a separate indent for the binary store's JSON (§7.5).
            for store in ["json", "json_binary"] {
                if let Some(Value::Int(n)) = stores
                    .get(store)
                    .and_then(|y| y.as_map())
                    .and_then(|y| y.get("indent"))
                {
                    let indent = match *n {
                        -1 => None,
                        n if n >= 0 => Some(n as usize),
                        _ => {
                            return Err(err(
                                format!("stores.{store}.indent"),
                                "must be -1 (TAB) or more",
                            ))
                        }
                    };
                    if store == "json" {
                        cfg.stores.json_indent = indent;
                    } else {
                        cfg.stores.json_binary_indent = indent;
                    }
                }
            }
        }
        Ok(cfg)
    }

    /// The first rule whose `path_regex` matches `relative_path` (a rule without one
    /// matches everything).
    pub fn rule_for(&self, relative_path: &str) -> Option<&CreationRule> {
        self.creation_rules.iter().find(|r| match &r.path_regex {
            None => true,
            Some(re) => Regex::new(re)
                .map(|re| re.is_match(relative_path.as_bytes()))
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::formats::{codec, Format};

    fn parse(text: &str) -> SopsConfig {
        let docs = codec(Format::Yaml, &FormatOptions::default())
            .parse_plain(text.as_bytes())
            .unwrap();
        SopsConfig::from_document(&docs[0]).unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let cfg = parse("creation_rules:\n  - path_regex: \\.prod\\.yaml$\n    age: a1, a2\n    encrypted_regex: ^data$\n  - age: [b1]\n");
        let r = cfg.rule_for("x/secret.prod.yaml").unwrap();
        assert_eq!(r.age_groups, vec![vec!["a1".to_string(), "a2".to_string()]]);
        assert_eq!(r.rule, Some(SelectionRule::EncryptedRegex("^data$".into())));
        assert_eq!(
            cfg.rule_for("dev.yaml").unwrap().age_groups,
            vec![vec!["b1".to_string()]]
        );
    }

    #[test]
    fn key_groups_and_two_selection_rules() {
        let cfg = parse("creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [a, a]\n      - age: [b]\n");
        let r = &cfg.creation_rules[0];
        assert_eq!(
            r.age_groups,
            vec![vec!["a".to_string()], vec!["b".to_string()]]
        );
        assert_eq!(r.shamir_threshold, Some(2));
        let docs = codec(Format::Yaml, &FormatOptions::default())
            .parse_plain(b"creation_rules:\n  - encrypted_regex: a\n    unencrypted_suffix: b\n")
            .unwrap();
        assert!(SopsConfig::from_document(&docs[0]).is_err());
    }

    #[test]
    fn path_regex_matches_characters_and_a_bad_one_is_named() {
        // `.` is one character (as in Go's RE2), also when it takes several bytes.
        let cfg =
            parse("creation_rules:\n  - path_regex: ^s/.\\.yaml$\n    age: [a]\n  - age: [b]\n");
        assert_eq!(
            cfg.rule_for("s/\u{e9}.yaml").unwrap().age_groups,
            vec![vec!["a".to_string()]]
        );
        assert_eq!(
            cfg.rule_for("s/ab.yaml").unwrap().age_groups,
            vec![vec!["b".to_string()]]
        );
        let docs = codec(Format::Yaml, &FormatOptions::default())
            .parse_plain(b"creation_rules:\n  - path_regex: '('\n")
            .unwrap();
        let e = SopsConfig::from_document(&docs[0]).unwrap_err();
        assert_eq!(e.where_, "creation_rules[0].path_regex");
        assert!(e.reason.contains("unclosed group"), "{}", e.reason);
    }
}
