//! What a repository-wide `updatekeys`/`rotate` does to each file, and what `audit`
//! finds wrong with it, decided from the file's metadata and its `.sops.yaml` rule
//! alone (pure: no I/O, no key; issue 14). The shells in `cli/repo_keys.rs` and
//! `cli/audit.rs` read the files, unwrap keys and write.

use crate::core::creation_rules::CreationRule;
use crate::core::keys::kms::label_is_named_by;
use crate::core::keys::KmsKey;
use crate::core::metadata::{MasterKey, Metadata, OtherKeyKind};
use std::collections::BTreeSet;

/// A recipient as recorded in a file, for reports: the age recipient or SSH key line,
/// `pgp:<fingerprint>`, an AWS KMS key's [`KmsKey::label`] (ARN, role, context,
/// profile: what a rule's key is compared by), or another cloud key's identifying
/// fields. Public data only.
pub fn recipient_label(key: &MasterKey) -> String {
    if let Some(Ok((kms, _))) = KmsKey::of_master_key(key) {
        return kms.label();
    }
    match key {
        MasterKey::Age { recipient, .. } => recipient.trim().to_string(),
        MasterKey::Pgp { fingerprint, .. } => format!("pgp:{fingerprint}"),
        MasterKey::Other { kind, fields } => {
            let field = |name: &str| fields.get(name).and_then(|v| v.as_str()).unwrap_or("");
            let id = match kind {
                OtherKeyKind::Kms => field("arn").to_string(),
                OtherKeyKind::GcpKms => field("resource_id").to_string(),
                OtherKeyKind::AzureKv => format!("{}/keys/{}", field("vault_url"), field("name")),
                OtherKeyKind::HcVault => format!(
                    "{}/v1/{}/keys/{}",
                    field("vault_address"),
                    field("engine_path"),
                    field("key_name")
                ),
                OtherKeyKind::HcKms => field("key_id").to_string(),
            };
            format!("{}:{id}", kind.list_name())
        }
    }
}

/// Every recipient recorded in the file, in file order, without repeats.
pub fn recorded_recipients(md: &Metadata) -> Vec<String> {
    let mut seen = BTreeSet::new();
    md.key_groups
        .iter()
        .flat_map(|g| g.keys.iter())
        .map(recipient_label)
        .filter(|l| seen.insert(l.clone()))
        .collect()
}

/// The key types in the file that sopsync cannot wrap a data key for (GCP KMS, Azure
/// Key Vault, Vault transit, HuaweiCloud KMS), by their metadata list name. A file
/// with any of them is never rewritten: the rewrite would drop those entries, and
/// whoever relies on them (a CI job with a cloud identity, say) would lose access
/// silently. age, PGP (GnuPG) and AWS KMS (the SDK) entries are wrapped for again.
pub fn unusable_key_types(md: &Metadata) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = md
        .key_groups
        .iter()
        .flat_map(|g| g.keys.iter())
        .filter(|k| {
            !matches!(k, MasterKey::Age { .. } | MasterKey::Pgp { .. })
                && KmsKey::of_master_key(k).is_none()
        })
        .map(MasterKey::type_name)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Recipients that leave and join a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecipientChange {
    /// Recorded in the file, absent from the target groups. Their holders still know
    /// the current data key: only a rotation makes the removal effective.
    pub removed: Vec<String>,
    /// In the target groups, not recorded in the file.
    pub added: Vec<String>,
    /// `rotate` only: recipients the file keeps though its `.sops.yaml` rule does not
    /// list them (none when no rule applies). The `sops` block is not covered by the
    /// MAC, so whoever can push can add an entry to a file, and a rotation then wraps
    /// the new data key for it: reports say so.
    pub unlisted: Vec<String>,
}

impl RecipientChange {
    /// Compares the file's recipients with `target` (flattened over groups).
    pub fn between(md: &Metadata, target: &[Vec<String>]) -> RecipientChange {
        let recorded = recorded_recipients(md);
        let wanted: Vec<String> = {
            let mut seen = BTreeSet::new();
            target
                .iter()
                .flatten()
                .map(|s| s.trim().to_string())
                .filter(|s| seen.insert(s.clone()))
                .collect()
        };
        RecipientChange {
            removed: recorded
                .iter()
                .filter(|r| !wanted.contains(r))
                .cloned()
                .collect(),
            added: wanted
                .iter()
                .filter(|r| !recorded.contains(r))
                .cloned()
                .collect(),
            unlisted: Vec::new(),
        }
    }

    /// True when nobody leaves or joins.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// What a recursive run does to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the file is already wrapped for exactly the target groups and no
    /// rotation was asked for. Not a byte is written (`updatekeys` is idempotent).
    Unchanged,
    /// The same data key wrapped for new groups (`updatekeys`); values, `mac` and
    /// `lastmodified` stay as they are.
    Rewrap(RecipientChange),
    /// A new data key, every value re-encrypted, wrapped for the target groups.
    Rotate(RecipientChange),
    /// Not touched: the file holds key entries sopsync cannot wrap for.
    Refuse {
        /// Their metadata list names (`kms`, `gcp_kms`, `azure_kv`, `hc_vault`).
        key_types: Vec<&'static str>,
    },
}

/// True when the file's groups hold exactly `target` (each group compared as a set, in
/// order) with the same threshold: re-wrapping would change bytes and nothing else.
fn same_groups(md: &Metadata, target: &[Vec<String>], threshold: Option<usize>) -> bool {
    let as_set = |g: &[String]| -> BTreeSet<String> { g.iter().map(|s| s.trim().into()).collect() };
    md.key_groups.len() == target.len()
        && md.shamir_threshold == threshold
        && md.key_groups.iter().zip(target).all(|(g, t)| {
            let recorded: BTreeSet<String> = g.keys.iter().map(recipient_label).collect();
            recorded == as_set(t)
        })
}

/// `updatekeys` (and with `rotate`, `updatekeys --rotate`): the file is wrapped for
/// `rule`'s groups and threshold.
pub fn plan_updatekeys(md: &Metadata, rule: &CreationRule, rotate: bool) -> Action {
    let key_types = unusable_key_types(md);
    if !key_types.is_empty() {
        return Action::Refuse { key_types };
    }
    let change = RecipientChange::between(md, &rule.label_groups());
    let threshold = rule_threshold(md, rule);
    if rotate {
        Action::Rotate(change)
    } else if same_groups(md, &rule.label_groups(), threshold) {
        Action::Unchanged
    } else {
        Action::Rewrap(change)
    }
}

/// The threshold a file gets under `rule`: the rule's, else the file's, and none for a
/// single group (sops writes none then).
pub fn rule_threshold(md: &Metadata, rule: &CreationRule) -> Option<usize> {
    if rule.key_groups.len() <= 1 {
        None
    } else {
        rule.shamir_threshold.or(md.shamir_threshold)
    }
}

/// `rotate`: the file's own groups, minus `remove` in every group, plus `add` in the
/// first group (as `rotate --add-age/--rm-age` does for one file). A `kms:ARN` in
/// `remove` removes every key of that ARN, whatever its role or context (sops
/// removes by ARN). With the file's `rule`, the change names the recipients kept that
/// the rule does not list ([`RecipientChange::unlisted`]). Returns the action and the
/// target groups.
pub fn plan_rotate(
    md: &Metadata,
    add: &[String],
    remove: &[String],
    rule: Option<&CreationRule>,
) -> (Action, Vec<Vec<String>>) {
    let key_types = unusable_key_types(md);
    if !key_types.is_empty() {
        return (Action::Refuse { key_types }, Vec::new());
    }
    let mut groups: Vec<Vec<String>> = md
        .key_groups
        .iter()
        .map(|g| {
            g.keys
                .iter()
                .map(recipient_label)
                .filter(|r| !remove.iter().any(|name| label_is_named_by(r, name)))
                .collect()
        })
        .collect();
    if let Some(first) = groups.first_mut() {
        for a in add {
            if !first.contains(a) {
                first.push(a.clone());
            }
        }
    }
    let mut change = RecipientChange::between(md, &groups);
    if let Some(rule) = rule {
        let listed: BTreeSet<String> = rule.label_groups().into_iter().flatten().collect();
        let mut seen = BTreeSet::new();
        change.unlisted = groups
            .iter()
            .flatten()
            .filter(|l| !listed.contains(*l) && !add.contains(l) && seen.insert(l.to_string()))
            .cloned()
            .collect();
    }
    (Action::Rotate(change), groups)
}

/// One problem `audit` reports about a file. Never carries a value or a digest of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A recipient recorded in the file that its rule no longer lists.
    StaleRecipient(String),
    /// A recipient of the rule that the file is not wrapped for.
    MissingRecipient(String),
    /// No `.sops.yaml` rule matches the file (or no `.sops.yaml` was found).
    NoRule(String),
    /// The `.sops.yaml` that applies cannot be read.
    BadConfig(String),
    /// The given identities cannot unwrap the data key.
    CannotOpen(String),
    /// The data key unwraps but the values do not verify against the MAC.
    MacFailure(String),
    /// A file that a rule with a `path_regex` says must be encrypted is plaintext.
    Plaintext(String),
    /// The file could not be read or parsed as a SOPS file.
    Unreadable(String),
}

impl Finding {
    /// The stable name of the check (JSON `kind`, JUnit failure `type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::StaleRecipient(_) => "stale_recipient",
            Finding::MissingRecipient(_) => "missing_recipient",
            Finding::NoRule(_) => "no_rule",
            Finding::BadConfig(_) => "bad_config",
            Finding::CannotOpen(_) => "cannot_open",
            Finding::MacFailure(_) => "mac_failure",
            Finding::Plaintext(_) => "plaintext",
            Finding::Unreadable(_) => "unreadable",
        }
    }

    /// What was found, in words (a recipient, a rule, or an error without values).
    pub fn detail(&self) -> &str {
        match self {
            Finding::StaleRecipient(s)
            | Finding::MissingRecipient(s)
            | Finding::NoRule(s)
            | Finding::BadConfig(s)
            | Finding::CannotOpen(s)
            | Finding::MacFailure(s)
            | Finding::Plaintext(s)
            | Finding::Unreadable(s) => s,
        }
    }
}

/// The recipient findings for a SOPS file under `rule`: stale ones, then missing ones.
pub fn recipient_findings(md: &Metadata, rule: &CreationRule) -> Vec<Finding> {
    let change = RecipientChange::between(md, &rule.label_groups());
    change
        .removed
        .into_iter()
        .map(Finding::StaleRecipient)
        .chain(change.added.into_iter().map(Finding::MissingRecipient))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metadata::KeyGroup;
    use crate::core::tree::{Mapping, Timestamp, Value};

    fn age(r: &str) -> MasterKey {
        MasterKey::Age {
            recipient: r.into(),
            enc: String::new(),
        }
    }

    fn md(groups: Vec<Vec<MasterKey>>) -> Metadata {
        Metadata {
            key_groups: groups.into_iter().map(|keys| KeyGroup { keys }).collect(),
            shamir_threshold: None,
            last_modified: Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
            mac: String::new(),
            rule: None,
            mac_only_encrypted: false,
            version: "3.11.0".into(),
        }
    }

    fn rule(groups: &[&[&str]]) -> CreationRule {
        use crate::core::creation_rules::RuleKey;
        CreationRule {
            key_groups: groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|s| match s.strip_prefix("pgp:") {
                            Some(fp) => RuleKey::Pgp(fp.to_string()),
                            None => RuleKey::Age(s.to_string()),
                        })
                        .collect()
                })
                .collect(),
            ..CreationRule::default()
        }
    }

    #[test]
    fn updatekeys_with_the_same_recipients_in_another_order_changes_nothing() {
        let m = md(vec![vec![age("a"), age("b")]]);
        assert_eq!(
            plan_updatekeys(&m, &rule(&[&["b", "a"]]), false),
            Action::Unchanged
        );
    }

    #[test]
    fn updatekeys_reports_who_leaves_and_who_joins() {
        let m = md(vec![vec![age("a"), age("b"), age("c")]]);
        let expected = RecipientChange {
            removed: vec!["c".into()],
            added: vec!["d".into()],
            unlisted: Vec::new(),
        };
        assert_eq!(
            plan_updatekeys(&m, &rule(&[&["a", "b", "d"]]), false),
            Action::Rewrap(expected.clone())
        );
        assert_eq!(
            plan_updatekeys(&m, &rule(&[&["a", "b", "d"]]), true),
            Action::Rotate(expected)
        );
        // Same recipients in other groups is a change too (who can open alone differs).
        assert!(matches!(
            plan_updatekeys(&m, &rule(&[&["a"], &["b", "c"]]), false),
            Action::Rewrap(c) if c.is_empty()
        ));
    }

    #[test]
    fn a_file_with_gcp_kms_entries_is_refused_by_name_and_pgp_entries_are_kept() {
        let mut fields = Mapping::new();
        fields.push("resource_id", Value::str("projects/p/keys/k"));
        let m = md(vec![vec![
            age("a"),
            MasterKey::Other {
                kind: OtherKeyKind::GcpKms,
                fields,
            },
            MasterKey::Pgp {
                fingerprint: "F1".into(),
                created_at: String::new(),
                enc: String::new(),
            },
        ]]);
        // Issue 15: pgp entries are wrapped for again through GnuPG; gcp_kms is not.
        let refused = Action::Refuse {
            key_types: vec!["gcp_kms"],
        };
        assert_eq!(plan_updatekeys(&m, &rule(&[&["a"]]), false), refused);
        assert_eq!(plan_rotate(&m, &[], &[], None).0, refused);
        assert_eq!(
            recorded_recipients(&m),
            vec!["a", "gcp_kms:projects/p/keys/k", "pgp:F1"]
        );
    }

    fn pairs(context: &[(&str, &str)]) -> Vec<(String, String)> {
        context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kms(arn: &str, role: Option<&str>, context: &[(&str, &str)]) -> MasterKey {
        KmsKey {
            arn: arn.into(),
            role: role.map(String::from),
            context: pairs(context),
            aws_profile: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        }
        .to_master_key(b"blob")
    }

    fn kms_rule(arn: &str, role: Option<&str>, context: &[(&str, &str)]) -> CreationRule {
        use crate::core::creation_rules::{KmsRuleKey, RuleKey};
        CreationRule {
            key_groups: vec![vec![
                RuleKey::Age("a".into()),
                RuleKey::Kms(KmsRuleKey {
                    arn: arn.into(),
                    role: role.map(String::from),
                    context: pairs(context),
                    aws_profile: None,
                }),
            ]],
            ..CreationRule::default()
        }
    }

    #[test]
    fn kms_entries_are_wrapped_again_and_compared_by_arn_role_and_context() {
        const ARN: &str = "arn:aws:kms:eu-west-1:1:key/k";
        const ROLE: &str = "arn:aws:iam::1:role/r";
        let m = md(vec![vec![
            age("a"),
            kms(ARN, Some(ROLE), &[("team", "a"), ("app", "x")]),
        ]]);
        let label = format!("kms:{ARN}+{ROLE} (context \"app\"=\"x\", \"team\"=\"a\")");
        assert_eq!(
            recorded_recipients(&m),
            vec!["a".to_string(), label.clone()]
        );
        // The same key in the rule (context in another order): nothing to do.
        let same = kms_rule(ARN, Some(ROLE), &[("app", "x"), ("team", "a")]);
        assert_eq!(plan_updatekeys(&m, &same, false), Action::Unchanged);
        // A new context for the same ARN is a change that updatekeys applies.
        let other = kms_rule(ARN, Some(ROLE), &[("team", "b")]);
        assert_eq!(
            plan_updatekeys(&m, &other, false),
            Action::Rewrap(RecipientChange {
                removed: vec![label.clone()],
                added: vec![format!("kms:{ARN}+{ROLE} (context \"team\"=\"b\")")],
                unlisted: Vec::new(),
            })
        );
        // `--rm-kms ARN` removes the key whatever its role and context; a longer ARN
        // that starts with the same text is another key.
        let (_, groups) = plan_rotate(&m, &[], &[format!("kms:{ARN}")], None);
        assert_eq!(groups, vec![vec!["a".to_string()]]);
        let (_, kept) = plan_rotate(&m, &[], &[format!("kms:{ARN}2")], None);
        assert_eq!(kept, vec![vec!["a".to_string(), label]]);
    }

    #[test]
    fn rotate_keeps_the_groups_and_applies_add_and_remove() {
        let m = md(vec![vec![age("a"), age("b")], vec![age("c")]]);
        let (action, groups) = plan_rotate(&m, &["d".into()], &["b".into()], None);
        assert_eq!(groups, vec![vec!["a", "d"], vec!["c"]]);
        assert_eq!(
            action,
            Action::Rotate(RecipientChange {
                removed: vec!["b".into()],
                added: vec!["d".into()],
                unlisted: Vec::new(),
            })
        );
        let (same, _) = plan_rotate(&m, &[], &[], None);
        assert_eq!(same, Action::Rotate(RecipientChange::default()));
    }

    #[test]
    fn rotate_names_the_recipients_it_keeps_that_the_rule_does_not_list() {
        let m = md(vec![vec![age("a"), age("mallory")], vec![age("b")]]);
        let (action, _) = plan_rotate(&m, &["c".into()], &[], Some(&rule(&[&["a"], &["b"]])));
        let Action::Rotate(change) = action else {
            panic!("not a rotation")
        };
        // `c` is added on purpose; `mallory` is in the file only.
        assert_eq!(change.unlisted, vec!["mallory".to_string()]);
        let (Action::Rotate(none), _) =
            plan_rotate(&m, &[], &["mallory".into()], Some(&rule(&[&["a"], &["b"]])))
        else {
            panic!("not a rotation")
        };
        assert!(none.unlisted.is_empty());
    }

    #[test]
    fn audit_names_stale_and_missing_recipients() {
        let m = md(vec![vec![age("a"), age("old")]]);
        assert_eq!(
            recipient_findings(&m, &rule(&[&["a", "new"]])),
            vec![
                Finding::StaleRecipient("old".into()),
                Finding::MissingRecipient("new".into())
            ]
        );
        assert!(recipient_findings(&m, &rule(&[&["old", "a"]])).is_empty());
    }
}
