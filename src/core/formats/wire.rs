//! The wire form of the `sops` block: [`Mapping`] (as the codecs see it) <->
//! [`Metadata`] (spec §6). Serialization only; no cryptography.
//!
//! Guarantees: emitted fields follow sops 3.11's order (§6.1, §6.2); one key group is
//! written as flat lists, several as `key_groups` with `hc_vault`/`age` always present
//! (`[]` in the YAML shape, `null` in the JSON shape that JSON, binary, dotenv and INI
//! use). Readers accept the legacy forms of §6.6 (`kms: []`, `null` lists, unquoted
//! timestamps, `version: 1.x`) and numbers as Int, integral Float or string (§6.4).

use super::Format;
use crate::core::error::CoreError;
use crate::core::metadata::{KeyGroup, MasterKey, Metadata, OtherKeyKind, SelectionRule};
use crate::core::number::format_f;
use crate::core::tree::{MapEntry, Mapping, SeqEntry, Sequence, Timestamp, Value};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidMetadata {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The key lists in the order sops collects them into a group (§5.5 step 2). sops 3.11
/// reads HuaweiCloud KMS entries (`hckms`) after `gcp_kms`; a list missing here would
/// be dropped on the next rewrite, so every list sops can write is named.
const LISTS: [&str; 7] = [
    "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "pgp", "age",
];

/// Reads the `sops` block. `format` tells which shape it came in (numbers in JSON).
///
/// Errors: [`CoreError::InvalidMetadata`] naming the field (spec §6.5; exit 1).
pub fn metadata_from_mapping(m: &Mapping, format: Format) -> Result<Metadata, CoreError> {
    // §6.1: any non-empty flat list means one group; else key_groups.
    let flat = read_group(m, "")?;
    let key_groups = if !flat.keys.is_empty() {
        vec![flat]
    } else {
        match m.get("key_groups") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Seq(s)) => {
                let mut groups = Vec::new();
                for (i, v) in values(s).enumerate() {
                    let Value::Map(g) = v else {
                        return Err(invalid(format!("key_groups[{i}]"), "is not a mapping"));
                    };
                    groups.push(read_group(g, &format!("key_groups[{i}]."))?);
                }
                groups
            }
            Some(_) => return Err(invalid("key_groups", "is not a list")),
        }
    };
    if key_groups.iter().all(|g| g.keys.is_empty()) {
        return Err(invalid("key groups", "no keys found in file"));
    }

    let shamir_threshold = match m.get("shamir_threshold") {
        None | Some(Value::Null) => None,
        Some(v) => match read_count(v) {
            Some(0) => None,
            Some(n) => Some(n),
            None => return Err(invalid("shamir_threshold", "is not a non-negative integer")),
        },
    };

    let last_modified = match m.get("lastmodified") {
        Some(Value::Str(t)) => t
            .as_str()
            .and_then(Timestamp::parse_rfc3339)
            .ok_or_else(|| invalid("lastmodified", "is not an RFC 3339 time"))?,
        // §6.6: an unquoted YAML timestamp arrives already typed.
        Some(Value::Time(t)) => *t,
        Some(_) => return Err(invalid("lastmodified", "is not an RFC 3339 time")),
        None => return Err(invalid("lastmodified", "is missing")),
    };

    let mac = match m.get("mac") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Str(t)) => t
            .as_str()
            .ok_or_else(|| invalid("mac", "is not UTF-8"))?
            .to_string(),
        Some(_) => return Err(invalid("mac", "is not a string")),
    };

    let mut rule = None;
    for key in SelectionRule::KEYS {
        match m.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Str(t)) if t.is_empty() => {}
            Some(Value::Str(t)) => {
                let text = t
                    .as_str()
                    .ok_or_else(|| invalid(key, "is not UTF-8"))?
                    .to_string();
                if let Some(prev) = &rule {
                    let prev: &SelectionRule = prev;
                    return Err(invalid(
                        key,
                        format!(
                            "only one selection rule is allowed, but {} is also set",
                            prev.key()
                        ),
                    ));
                }
                rule = SelectionRule::from_key(key, text);
            }
            Some(_) => return Err(invalid(key, "is not a string")),
        }
    }

    let mac_only_encrypted = match m.get("mac_only_encrypted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        // §6.4: flattened stores carry the string; only exactly `true` is true.
        Some(Value::Str(t)) => t.expose_secret() == b"true",
        Some(_) => return Err(invalid("mac_only_encrypted", "is not a boolean")),
    };

    let version = match m.get("version") {
        Some(Value::Str(t)) => t
            .as_str()
            .ok_or_else(|| invalid("version", "is not UTF-8"))?
            .to_string(),
        Some(Value::Float(_) | Value::Int(_)) if format == Format::Json || format == Format::Binary => {
            return Err(invalid(
                "version",
                "is a number; files from Python sops 1.x must be re-encrypted or have the version quoted",
            ))
        }
        Some(Value::Float(f)) => format_f(*f),
        Some(Value::Int(i)) => i.to_string(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(invalid("version", "is not a string")),
    };
    validate_version(&version)?;

    Ok(Metadata {
        key_groups,
        shamir_threshold,
        last_modified,
        mac,
        rule,
        mac_only_encrypted,
        version,
    })
}

/// §6.5: a full semver `MAJOR.MINOR.PATCH` (leading `v` allowed), or anything starting
/// with `1.` (Python sops).
fn validate_version(v: &str) -> Result<(), CoreError> {
    if v.is_empty() {
        return Err(invalid("version", "version string empty"));
    }
    if v.starts_with("1.") {
        return Ok(());
    }
    let core = v.strip_prefix('v').unwrap_or(v);
    let core = core.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.bytes().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    if parts.len() == 3 && parts.iter().all(numeric) {
        Ok(())
    } else {
        Err(invalid("version", "is not a MAJOR.MINOR.PATCH version"))
    }
}

fn values(s: &Sequence) -> impl Iterator<Item = &Value> {
    s.items.iter().filter_map(|i| match i {
        SeqEntry::Value(v) => Some(v),
        SeqEntry::Comment(_) => None,
    })
}

/// A count given as Int, integral Float or a decimal/integral-float string (§6.4).
fn read_count(v: &Value) -> Option<usize> {
    let f = match v {
        Value::Int(i) => return usize::try_from(*i).ok(),
        Value::Float(f) => *f,
        Value::Str(t) => {
            let s = t.as_str()?;
            if let Ok(i) = s.parse::<usize>() {
                return Some(i);
            }
            s.parse::<f64>().ok()?
        }
        _ => return None,
    };
    (f.fract() == 0.0 && (0.0..=255.0).contains(&f)).then_some(f as usize)
}

fn read_group(m: &Mapping, prefix: &str) -> Result<KeyGroup, CoreError> {
    let mut keys = Vec::new();
    for list in LISTS {
        let field = format!("{prefix}{list}");
        let entries = match m.get(list) {
            // §6.6: missing, null and [] are the same.
            None | Some(Value::Null) => continue,
            Some(Value::Seq(s)) => s,
            Some(_) => return Err(invalid(field, "is not a list")),
        };
        for (i, v) in values(entries).enumerate() {
            let at = format!("{field}[{i}]");
            let Value::Map(e) = v else {
                return Err(invalid(at, "is not a mapping"));
            };
            keys.push(read_key(list, e, &at)?);
        }
    }
    Ok(KeyGroup { keys })
}

fn text_field(e: &Mapping, name: &str, at: &str) -> Result<String, CoreError> {
    match e.get(name) {
        Some(Value::Str(t)) => Ok(t
            .as_str()
            .ok_or_else(|| invalid(format!("{at}.{name}"), "is not UTF-8"))?
            .to_string()),
        Some(Value::Time(t)) => Ok(t.to_rfc3339_nano()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(invalid(format!("{at}.{name}"), "is not a string")),
    }
}

fn check_created_at(s: &str, at: &str) -> Result<(), CoreError> {
    // §6.2: created_at is parsed strictly when read.
    if Timestamp::parse_rfc3339(s).is_none() {
        return Err(invalid(
            format!("{at}.created_at"),
            "is not an RFC 3339 time",
        ));
    }
    Ok(())
}

fn read_key(list: &str, e: &Mapping, at: &str) -> Result<MasterKey, CoreError> {
    Ok(match list {
        "age" => MasterKey::Age {
            recipient: text_field(e, "recipient", at)?,
            enc: text_field(e, "enc", at)?,
        },
        "pgp" => {
            let created_at = text_field(e, "created_at", at)?;
            check_created_at(&created_at, at)?;
            MasterKey::Pgp {
                fingerprint: text_field(e, "fp", at)?,
                created_at,
                enc: text_field(e, "enc", at)?,
            }
        }
        other => {
            let kind = match other {
                "kms" => OtherKeyKind::Kms,
                "gcp_kms" => OtherKeyKind::GcpKms,
                "azure_kv" => OtherKeyKind::AzureKv,
                "hckms" => OtherKeyKind::HcKms,
                _ => OtherKeyKind::HcVault,
            };
            if e.get("created_at").is_some() {
                check_created_at(&text_field(e, "created_at", at)?, at)?;
            }
            MasterKey::Other {
                kind,
                fields: e.clone(),
            }
        }
    })
}

/// Writes the `sops` block in the shape `format`'s store expects (§6.1–§6.4).
pub fn metadata_to_mapping(md: &Metadata, format: Format) -> Mapping {
    let yaml = format == Format::Yaml;
    let mut m = Mapping::new();
    let several = md.key_groups.len() > 1;
    if several {
        // §6.1: with several groups the threshold is always written (N when unset).
        m.push(
            "shamir_threshold",
            Value::Int(md.effective_threshold() as i64),
        );
    } else if let Some(t) = md.shamir_threshold.filter(|&t| t > 0) {
        m.push("shamir_threshold", Value::Int(t as i64));
    }
    let empty = KeyGroup::default();
    let flat = if several {
        let groups = md
            .key_groups
            .iter()
            .map(|g| {
                let mut gm = Mapping::new();
                // §6.2: pgp, kms, gcp_kms, hckms, azure_kv when non-empty; hc_vault, age
                // always (sops 3.11 puts hckms after gcp_kms).
                for list in ["pgp", "kms", "gcp_kms", "hckms", "azure_kv"] {
                    if let Some(v) = list_value(g, list) {
                        gm.push(list, v);
                    }
                }
                for list in ["hc_vault", "age"] {
                    let v = list_value(g, list).unwrap_or(if yaml {
                        Value::Seq(Sequence::default())
                    } else {
                        Value::Null
                    });
                    gm.push(list, v);
                }
                SeqEntry::Value(Value::Map(gm))
            })
            .collect();
        m.push("key_groups", Value::Seq(Sequence { items: groups }));
        &empty
    } else {
        md.key_groups.first().unwrap_or(&empty)
    };
    // §6.1 fields 3-7, with sops 3.11's `hckms` after `gcp_kms`.
    for list in ["kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "age"] {
        if let Some(v) = list_value(flat, list) {
            m.push(list, v);
        }
    }
    m.push("lastmodified", Value::str(&md.last_modified.to_rfc3339()));
    m.push("mac", Value::str(&md.mac));
    if let Some(v) = list_value(flat, "pgp") {
        m.push("pgp", v);
    }
    if let Some(rule) = &md.rule {
        m.push(rule.key(), Value::str(rule.value()));
    }
    if md.mac_only_encrypted {
        m.push("mac_only_encrypted", Value::Bool(true));
    }
    m.push("version", Value::str(&md.version));
    m
}

/// The list `name` of a group as a sequence of entry mappings; `None` when empty.
fn list_value(g: &KeyGroup, name: &str) -> Option<Value> {
    let items: Vec<SeqEntry> = g
        .keys
        .iter()
        .filter(|k| k.type_name() == name)
        .map(|k| SeqEntry::Value(Value::Map(key_mapping(k))))
        .collect();
    (!items.is_empty()).then_some(Value::Seq(Sequence { items }))
}

fn key_mapping(k: &MasterKey) -> Mapping {
    let mut e = Mapping::new();
    match k {
        MasterKey::Age { recipient, enc } => {
            e.push("recipient", Value::str(recipient));
            e.push("enc", Value::str(enc));
        }
        MasterKey::Pgp {
            fingerprint,
            created_at,
            enc,
        } => {
            e.push("created_at", Value::str(created_at));
            e.push("enc", Value::str(enc));
            e.push("fp", Value::str(fingerprint));
        }
        MasterKey::Other { fields, .. } => {
            e.entries = fields
                .entries
                .iter()
                .filter(|x| matches!(x, MapEntry::Pair { .. }))
                .cloned()
                .collect();
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(groups: usize) -> Metadata {
        Metadata {
            key_groups: (0..groups)
                .map(|i| KeyGroup {
                    keys: vec![MasterKey::Age {
                        recipient: format!("age1recipient{i}"),
                        enc: "-----BEGIN AGE ENCRYPTED FILE-----\nx\n-----END AGE ENCRYPTED FILE-----\n"
                            .into(),
                    }],
                })
                .collect(),
            shamir_threshold: None,
            last_modified: Timestamp::parse_rfc3339("2026-11-24T13:26:18Z").unwrap(),
            mac: "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]".into(),
            rule: Some(SelectionRule::default()),
            mac_only_encrypted: false,
            version: "3.11.0".into(),
        }
    }

    fn keys_of(m: &Mapping) -> Vec<&str> {
        m.pairs().map(|(k, _)| k).collect()
    }

    #[test]
    fn one_group_is_flat_in_sops_order_and_round_trips() {
        let md = sample(1);
        let m = metadata_to_mapping(&md, Format::Yaml);
        assert_eq!(
            keys_of(&m),
            [
                "age",
                "lastmodified",
                "mac",
                "unencrypted_suffix",
                "version"
            ]
        );
        assert_eq!(metadata_from_mapping(&m, Format::Yaml).unwrap(), md);
    }

    #[test]
    fn several_groups_write_threshold_and_empty_lists_per_shape() {
        let md = sample(3);
        let y = metadata_to_mapping(&md, Format::Yaml);
        assert_eq!(keys_of(&y)[..2], ["shamir_threshold", "key_groups"]);
        assert_eq!(y.get("shamir_threshold"), Some(&Value::Int(3)));
        let Some(Value::Seq(groups)) = y.get("key_groups") else {
            panic!()
        };
        let SeqEntry::Value(Value::Map(g0)) = &groups.items[0] else {
            panic!()
        };
        assert_eq!(keys_of(g0), ["hc_vault", "age"]);
        assert_eq!(g0.get("hc_vault"), Some(&Value::Seq(Sequence::default())));
        let j = metadata_to_mapping(&md, Format::Json);
        let Some(Value::Seq(groups)) = j.get("key_groups") else {
            panic!()
        };
        let SeqEntry::Value(Value::Map(g0)) = &groups.items[0] else {
            panic!()
        };
        assert_eq!(g0.get("hc_vault"), Some(&Value::Null));
        let back = metadata_from_mapping(&j, Format::Json).unwrap();
        assert_eq!(back.key_groups, md.key_groups);
        assert_eq!(back.shamir_threshold, Some(3));
    }

    #[test]
    fn hckms_entries_are_read_and_written_where_sops_puts_them() {
        // sops 3.11 writes HuaweiCloud KMS entries as `hckms`, after `gcp_kms`, both
        // flat and inside a key group; a rewrite must not drop them (issue 15).
        let mut entry = Mapping::new();
        entry.push("key_id", Value::str("tr-west-1:0d0466b0"));
        entry.push("created_at", Value::str("2025-01-02T03:04:05Z"));
        entry.push("enc", Value::str("aGNrbXM="));
        let hckms = MasterKey::Other {
            kind: OtherKeyKind::HcKms,
            fields: entry,
        };
        let mut md = sample(1);
        md.key_groups[0].keys.insert(0, hckms.clone());
        let flat = metadata_to_mapping(&md, Format::Yaml);
        assert_eq!(keys_of(&flat)[..2], ["hckms", "age"]);
        assert_eq!(metadata_from_mapping(&flat, Format::Yaml).unwrap(), md);
        let mut two = sample(2);
        two.key_groups[1].keys.insert(0, hckms);
        let grouped = metadata_to_mapping(&two, Format::Json);
        let Some(Value::Seq(groups)) = grouped.get("key_groups") else {
            panic!()
        };
        let SeqEntry::Value(Value::Map(g1)) = &groups.items[1] else {
            panic!()
        };
        assert_eq!(keys_of(g1), ["hckms", "hc_vault", "age"]);
        assert_eq!(
            metadata_from_mapping(&grouped, Format::Json)
                .unwrap()
                .key_groups,
            two.key_groups
        );
    }

    #[test]
    fn legacy_and_flattened_forms_are_read() {
        let mut m = metadata_to_mapping(&sample(1), Format::Json);
        m.push("kms", Value::Null);
        m.push("pgp", Value::Seq(Sequence::default()));
        m.push("shamir_threshold", Value::str("2.000000"));
        m.push("mac_only_encrypted", Value::str("true"));
        let md = metadata_from_mapping(&m, Format::Ini).unwrap();
        assert_eq!(md.shamir_threshold, Some(2));
        assert!(md.mac_only_encrypted);
        let mut old = metadata_to_mapping(&sample(1), Format::Yaml);
        *old.get_mut("version").unwrap() = Value::str("1.7");
        *old.get_mut("lastmodified").unwrap() =
            Value::Time(Timestamp::parse_rfc3339("2016-01-01T00:00:00+00:00").unwrap());
        assert!(metadata_from_mapping(&old, Format::Yaml).is_ok());
    }

    #[test]
    fn invalid_metadata_names_the_field() {
        let check = |edit: &dyn Fn(&mut Mapping), field: &str| {
            let mut m = metadata_to_mapping(&sample(1), Format::Json);
            edit(&mut m);
            match metadata_from_mapping(&m, Format::Json) {
                Err(CoreError::InvalidMetadata { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        };
        check(
            &|m| *m.get_mut("version").unwrap() = Value::str("3.7"),
            "version",
        );
        check(
            &|m| *m.get_mut("version").unwrap() = Value::str(""),
            "version",
        );
        check(
            &|m| *m.get_mut("version").unwrap() = Value::Float(1.6),
            "version",
        );
        check(
            &|m| *m.get_mut("lastmodified").unwrap() = Value::str("yesterday"),
            "lastmodified",
        );
        check(
            &|m| m.push("encrypted_regex", Value::str("^a$")),
            "encrypted_regex",
        );
        check(
            &|m| {
                m.remove("age");
            },
            "key groups",
        );
    }
}
