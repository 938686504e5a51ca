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
    /// The keys of each key group: `key_groups`, or one group from the flat `age:`,
    /// `pgp:` and `kms:` fields (sops ignores the flat fields when `key_groups` is set).
    pub key_groups: Vec<Vec<RuleKey>>,
    /// Shamir threshold.
    pub shamir_threshold: Option<usize>,
    /// The selection rule, if the rule sets one.
    pub rule: Option<SelectionRule>,
    /// Hash only encrypted values.
    pub mac_only_encrypted: bool,
}

impl CreationRule {
    /// The groups as recipient labels (`repo::rekey`'s names: the age recipient text,
    /// `pgp:<fingerprint>`, a KMS key's `kms:ARN[+ROLE] (context …) (profile …)`), for
    /// comparing with a file's entries.
    pub fn label_groups(&self) -> Vec<Vec<String>> {
        self.key_groups
            .iter()
            .map(|g| g.iter().map(RuleKey::label).collect())
            .collect()
    }
}

/// One key named by a creation rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleKey {
    /// An age recipient (`age1…` or an SSH public key line), unvalidated here.
    Age(String),
    /// A PGP fingerprint as written (spaces are removed when it is used, as sops does).
    Pgp(String),
    /// An AWS KMS key (its ARN, role, encryption context and profile).
    Kms(KmsRuleKey),
}

impl RuleKey {
    /// The label of the entry this key makes (see [`CreationRule::label_groups`]).
    pub fn label(&self) -> String {
        match self {
            RuleKey::Age(r) => r.trim().to_string(),
            RuleKey::Pgp(fp) => format!("pgp:{}", fp.replace(' ', "")),
            RuleKey::Kms(k) => super::keys::kms::label(
                &k.arn,
                k.role.as_deref(),
                &k.context,
                k.aws_profile.as_deref(),
            ),
        }
    }
}

/// An AWS KMS key of a rule: the `key_groups` form (`arn`, `role`, `context`,
/// `aws_profile`), or one ARN of the flat `kms:` list (`arn+role`, with the rule's
/// `aws_profile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KmsRuleKey {
    /// The key's ARN.
    pub arn: String,
    /// A role ARN to assume first, if any.
    pub role: Option<String>,
    /// The encryption context, in file order.
    pub context: Vec<(String, String)>,
    /// The AWS profile, if any.
    pub aws_profile: Option<String>,
}

impl KmsRuleKey {
    /// One entry of a flat `kms:` list: `arn` or `arn+role_arn` (sops'
    /// `MasterKeysFromArnString`).
    fn from_flat(text: &str, aws_profile: Option<&str>) -> KmsRuleKey {
        // sops removes every space first (`MasterKeysFromArnString`).
        let text: String = text.chars().filter(|c| *c != ' ').collect();
        let (arn, role) = match text.split_once('+') {
            Some((arn, role)) => (arn, Some(role.to_string())),
            None => (text.as_str(), None),
        };
        KmsRuleKey {
            arn: arn.to_string(),
            role,
            context: Vec::new(),
            aws_profile: aws_profile.map(String::from),
        }
    }

    /// A `key_groups[].kms[]` mapping.
    fn from_mapping(m: &Mapping, at: &str) -> Result<KmsRuleKey, ConfigError> {
        let text = |name: &str| -> Result<Option<String>, ConfigError> {
            match m.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| err(format!("{at}.{name}"), "expected a string")),
            }
        };
        let arn = text("arn")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| err(format!("{at}.arn"), "a kms key needs its `arn`"))?;
        let mut context = Vec::new();
        match m.get("context") {
            None | Some(Value::Null) => {}
            Some(Value::Map(c)) => {
                for (k, v) in c.pairs() {
                    let v = v
                        .as_str()
                        .ok_or_else(|| err(format!("{at}.context.{k}"), "expected a string"))?;
                    context.push((k.to_string(), v.to_string()));
                }
            }
            Some(_) => return Err(err(format!("{at}.context"), "expected a mapping")),
        }
        Ok(KmsRuleKey {
            arn,
            role: text("role")?.filter(|r| !r.is_empty()),
            context,
            aws_profile: text("aws_profile")?.filter(|p| !p.is_empty()),
        })
    }
}

/// Adds `key` to `group` unless it is there already (duplicates inside a group are
/// removed, §8.2).
fn push_unique(group: &mut Vec<RuleKey>, key: RuleKey) {
    if !group.iter().any(|k| k.label() == key.label()) {
        group.push(key);
    }
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

/// The values of a YAML list, comments skipped.
fn seq_values(s: &super::tree::Sequence) -> impl Iterator<Item = &Value> {
    s.items.iter().filter_map(|i| match i {
        SeqEntry::Value(v) => Some(v),
        SeqEntry::Comment(_) => None,
    })
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
    // The flat fields make one group, in sops' order: age, pgp, kms.
    let (mut flat_age, mut flat_pgp, mut flat_kms) = (Vec::new(), Vec::new(), Vec::new());
    let aws_profile = m
        .get("aws_profile")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let mut groups_given = false;
    for (k, v) in m.pairs() {
        let here = format!("{at}.{k}");
        match k {
            "path_regex" => {
                let re = v.as_str().ok_or_else(|| err(&here, "expected a string"))?;
                Regex::new(re).map_err(|e| err(&here, e))?;
                rule.path_regex = Some(re.to_string());
            }
            "age" => flat_age = string_list(v, &here)?,
            "pgp" => flat_pgp = string_list(v, &here)?,
            "kms" => flat_kms = string_list(v, &here)?,
            "aws_profile" if !matches!(v, Value::Null) && v.as_str().is_none() => {
                return Err(err(&here, "expected a string"));
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
                    // sops' order inside a group: age, pgp, kms (config.go
                    // extractMasterKeys), whatever the order of the fields.
                    let (mut age, mut pgp, mut kms) = (Vec::new(), Vec::new(), Vec::new());
                    for (gk, gv) in gm.pairs() {
                        let at = format!("{here}[{i}].{gk}");
                        match gk {
                            "age" => age.extend(string_list(gv, &at)?.into_iter().map(RuleKey::Age)),
                            "pgp" => pgp.extend(string_list(gv, &at)?.into_iter().map(RuleKey::Pgp)),
                            "kms" => {
                                let Value::Seq(list) = gv else {
                                    return Err(err(&at, "expected a list of {arn, role, context, aws_profile}"));
                                };
                                for (j, entry) in seq_values(list).enumerate() {
                                    let km = entry.as_map().ok_or_else(|| {
                                        err(format!("{at}[{j}]"), "expected a mapping with `arn`")
                                    })?;
                                    kms.push(RuleKey::Kms(KmsRuleKey::from_mapping(km, &format!("{at}[{j}]"))?));
                                }
                            }
                            other => {
                                return Err(err(
                                    format!("{here}[{i}].{other}"),
                                    "sopsync supports age, pgp and kms keys in key groups; use the sops CLI for gcp_kms/azure_keyvault/hc_vault/merge",
                                ))
                            }
                        }
                    }
                    let mut keys = Vec::new();
                    for key in age.into_iter().chain(pgp).chain(kms) {
                        push_unique(&mut keys, key);
                    }
                    out.push(keys);
                }
                groups_given = !out.is_empty();
                rule.key_groups = out;
            }
            "shamir_threshold" => {
                rule.shamir_threshold = Some(usize_of(v, &here)?).filter(|n| *n != 0)
            }
            "mac_only_encrypted" => {
                rule.mac_only_encrypted = matches!(v, Value::Bool(true));
            }
            "gcp_kms" | "azure_keyvault" | "hc_vault_transit_uri"
                if !matches!(v, Value::Null) && v.as_str() != Some("") =>
            {
                return Err(err(
                    &here,
                    "sopsync supports age, pgp and kms keys; use the sops CLI for this key type",
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
    if !groups_given {
        let mut group = Vec::new();
        let flat = flat_age
            .into_iter()
            .map(RuleKey::Age)
            .chain(flat_pgp.into_iter().map(RuleKey::Pgp))
            .chain(
                flat_kms
                    .iter()
                    .map(|a| RuleKey::Kms(KmsRuleKey::from_flat(a, aws_profile))),
            );
        for key in flat {
            push_unique(&mut group, key);
        }
        rule.key_groups = if group.is_empty() {
            Vec::new()
        } else {
            vec![group]
        };
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
        assert_eq!(
            r.label_groups(),
            vec![vec!["a1".to_string(), "a2".to_string()]]
        );
        assert_eq!(r.rule, Some(SelectionRule::EncryptedRegex("^data$".into())));
        assert_eq!(
            cfg.rule_for("dev.yaml").unwrap().label_groups(),
            vec![vec!["b1".to_string()]]
        );
    }

    #[test]
    fn key_groups_and_two_selection_rules() {
        let cfg = parse("creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [a, a]\n      - age: [b]\n");
        let r = &cfg.creation_rules[0];
        assert_eq!(
            r.label_groups(),
            vec![vec!["a".to_string()], vec!["b".to_string()]]
        );
        assert_eq!(r.shamir_threshold, Some(2));
        let docs = codec(Format::Yaml, &FormatOptions::default())
            .parse_plain(b"creation_rules:\n  - encrypted_regex: a\n    unencrypted_suffix: b\n")
            .unwrap();
        assert!(SopsConfig::from_document(&docs[0]).is_err());
    }

    #[test]
    fn pgp_and_kms_rules_load_in_sops_group_order() {
        // Issue 15: `pgp:` and `kms:` rules used to be errors.
        let cfg = parse(concat!(
            "creation_rules:\n",
            "  - path_regex: flat\n",
            "    kms: arn:aws:kms:us-east-1:1:key/a + arn:aws:iam::1:role/r\n",
            "    aws_profile: dev\n",
            "    pgp: 'FBC7 B9E2 A4F9 289A C0C1  D4FA 62F0 6C2E 1F2B 4D3A, 62F06C2E1F2B4D3A'\n",
            "    age: age1x\n",
            "  - key_groups:\n",
            "      - kms:\n",
            "          - arn: arn:k\n",
            "            role: arn:r\n",
            "            context: {team: a}\n",
            "        pgp: [62F06C2E1F2B4D3A, 62F06C2E1F2B4D3A]\n",
            "      - age: [age1y]\n",
        ));
        assert_eq!(
            cfg.rule_for("flat").unwrap().label_groups(),
            [[
                "age1x",
                "pgp:FBC7B9E2A4F9289AC0C1D4FA62F06C2E1F2B4D3A",
                "pgp:62F06C2E1F2B4D3A",
                "kms:arn:aws:kms:us-east-1:1:key/a+arn:aws:iam::1:role/r (profile \"dev\")",
            ]]
        );
        let RuleKey::Kms(flat_kms) = &cfg.rule_for("flat").unwrap().key_groups[0][3] else {
            panic!("not kms")
        };
        assert_eq!(flat_kms.role.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert_eq!(flat_kms.aws_profile.as_deref(), Some("dev"));
        let groups = &cfg.rule_for("other").unwrap().key_groups;
        assert_eq!(
            cfg.rule_for("other").unwrap().label_groups(),
            vec![
                vec![
                    "pgp:62F06C2E1F2B4D3A".to_string(),
                    "kms:arn:k+arn:r (context \"team\"=\"a\")".to_string()
                ],
                vec!["age1y".to_string()],
            ]
        );
        let RuleKey::Kms(k) = &groups[0][1] else {
            panic!("not kms")
        };
        assert_eq!(k.context, [("team".to_string(), "a".to_string())]);
    }

    #[test]
    fn path_regex_matches_characters_and_a_bad_one_is_named() {
        // `.` is one character (as in Go's RE2), also when it takes several bytes.
        let cfg =
            parse("creation_rules:\n  - path_regex: ^s/.\\.yaml$\n    age: [a]\n  - age: [b]\n");
        assert_eq!(
            cfg.rule_for("s/\u{e9}.yaml").unwrap().label_groups(),
            vec![vec!["a".to_string()]]
        );
        assert_eq!(
            cfg.rule_for("s/ab.yaml").unwrap().label_groups(),
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
