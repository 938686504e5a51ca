//! The encrypt and decrypt walks over the document tree (spec §3.2, §3.3, §4.1).
//!
//! Both walks visit leaves depth-first in file order, keep sops' comment stack, apply
//! the selection rule, and feed the MAC. They reproduce sops 3.11's quirks on
//! purpose: an encrypted comment inside a sequence becomes a `Str("ENC[…type:comment]")`
//! element (§3.3), and on decryption that element counts as a non-comment item, so
//! comment-regex rules can disagree between the two walks exactly as in sops.

use super::cipher::{
    self, canonical, canonical_comment, Canonical, FileCipher, Plain, TypeTag, IV_LEN,
};
use super::error::CoreError;
use super::mac::MacHasher;
use super::rules::Rule;
use super::secret::{DataKey, Text};
use super::tree::{KeyPath, MapEntry, Mapping, SeqEntry, Sequence, Value};
use rand_core::CryptoRngCore;
use std::collections::HashMap;
use std::fmt;
use zeroize::Zeroize;

#[derive(PartialEq, Eq, Hash)]
struct StashKey {
    aad: String,
    tag: TypeTag,
    plain: Vec<u8>,
}

/// IVs remembered while decrypting, keyed by (AAD, type, canonical plaintext), so that
/// re-encrypting an unchanged value reuses its IV (spec §2.4).
///
/// Security: holds plaintext; zeroized on drop, `Debug` shows only the count.
#[derive(Default)]
pub struct IvStash {
    map: HashMap<StashKey, [u8; IV_LEN]>,
}

impl IvStash {
    /// Number of remembered IVs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Remembers `iv` for `plain`, but only when `decrypted` (the bytes that were
    /// actually encrypted under this IV) equals the canonical bytes we would encrypt:
    /// a hand-made `1.50` re-encrypts as `1.5`, and reusing its IV for different
    /// plaintext under the same key would break GCM.
    fn insert(&mut self, aad: &str, plain: &Canonical, decrypted: &[u8], iv: &[u8]) {
        if plain.bytes.as_slice() != decrypted {
            return;
        }
        // Only 32-byte IVs can be reused by our 32-byte-IV encryption.
        if let Ok(iv) = <[u8; IV_LEN]>::try_from(iv) {
            self.map.insert(
                StashKey {
                    aad: aad.to_string(),
                    tag: plain.tag,
                    plain: plain.bytes.to_vec(),
                },
                iv,
            );
        }
    }

    fn get(&self, aad: &str, plain: &Canonical) -> Option<[u8; IV_LEN]> {
        let mut key = StashKey {
            aad: aad.to_string(),
            tag: plain.tag,
            plain: plain.bytes.to_vec(),
        };
        let found = self.map.get(&key).copied();
        key.plain.zeroize();
        found
    }
}

impl Drop for IvStash {
    fn drop(&mut self) {
        for (mut k, _) in self.map.drain() {
            k.plain.zeroize();
        }
    }
}

impl fmt::Debug for IvStash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IvStash({} entries, [REDACTED])", self.map.len())
    }
}

/// Encrypts every selected leaf of `docs` in place and returns the MAC (§4.1).
pub fn encrypt_documents(
    docs: &mut [Mapping],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
    stash: Option<&IvStash>,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, CoreError> {
    let cipher = FileCipher::new(key);
    let mut w = Encryptor {
        cipher: &cipher,
        rule,
        mac_only_encrypted,
        stash,
        rng,
        hasher: MacHasher::new(mac_only_encrypted),
    };
    for doc in docs {
        // §2.2: every document starts from an empty path.
        w.map(doc, &mut Vec::new(), &mut Vec::new())?;
    }
    Ok(w.hasher.finish())
}

struct Encryptor<'a> {
    /// The file's data key, its AES key schedule expanded once for all values.
    cipher: &'a FileCipher<'a>,
    rule: &'a Rule,
    mac_only_encrypted: bool,
    stash: Option<&'a IvStash>,
    rng: &'a mut dyn CryptoRngCore,
    hasher: MacHasher,
}

impl Encryptor<'_> {
    /// Encrypts canonical bytes at `path`; `None` for empty bytes (§1.4).
    fn seal(&mut self, path: &[String], plain: &Canonical) -> Option<String> {
        if plain.bytes.is_empty() {
            return None;
        }
        let aad = crate::core::tree::aad_of(path);
        // §2.4: reuse the IV of an unchanged value.
        let iv = match self.stash.and_then(|s| s.get(&aad, plain)) {
            Some(iv) => iv,
            None => {
                let mut iv = [0u8; IV_LEN];
                self.rng.fill_bytes(&mut iv);
                iv
            }
        };
        Some(self.cipher.seal(&iv, aad.as_bytes(), plain))
    }

    fn seal_comment(
        &mut self,
        path: &[String],
        text: &Text,
        stack: &[Vec<Text>],
    ) -> Result<Option<String>, CoreError> {
        if !self.rule.should_encrypt(path, stack, true) {
            return Ok(None);
        }
        let Some(env) = self.seal(path, &canonical_comment(text)) else {
            return Ok(None);
        };
        // §3.2: sops aborts when the ciphertext itself matches unencrypted_comment_regex.
        if let Some(re) = self.rule.unencrypted_comment_regex() {
            if re.is_match(env.as_bytes()) {
                return Err(CoreError::CommentCiphertextMatchesRule {
                    path: KeyPath(path.to_vec()),
                });
            }
        }
        Ok(Some(env))
    }

    fn map(
        &mut self,
        m: &mut Mapping,
        path: &mut Vec<String>,
        stack: &mut Vec<Vec<Text>>,
    ) -> Result<(), CoreError> {
        stack.push(Vec::new());
        for entry in &mut m.entries {
            match entry {
                MapEntry::Comment(text) => {
                    push_comment(stack, text);
                    if let Some(env) = self.seal_comment(path, text, stack)? {
                        // §3.3: in a mapping the ciphertext stays a comment.
                        *text = Text::from(env);
                    }
                }
                MapEntry::Pair { key, value } => {
                    path.push(key.clone());
                    self.value(value, path, stack)?;
                    path.pop();
                    clear_level(stack);
                }
            }
        }
        stack.pop();
        Ok(())
    }

    fn seq(
        &mut self,
        s: &mut Sequence,
        path: &mut Vec<String>,
        stack: &mut Vec<Vec<Text>>,
    ) -> Result<(), CoreError> {
        stack.push(Vec::new());
        for item in &mut s.items {
            match item {
                SeqEntry::Comment(text) => {
                    push_comment(stack, text);
                    if let Some(env) = self.seal_comment(path, text, stack)? {
                        // §3.3: in a sequence the encrypted comment becomes a string element.
                        *item = SeqEntry::Value(Value::Str(Text::from(env)));
                    }
                }
                SeqEntry::Value(v) => {
                    // §2.2: sequence elements add nothing to the path.
                    self.value(v, path, stack)?;
                    clear_level(stack);
                }
            }
        }
        stack.pop();
        Ok(())
    }

    fn value(
        &mut self,
        v: &mut Value,
        path: &mut Vec<String>,
        stack: &mut Vec<Vec<Text>>,
    ) -> Result<(), CoreError> {
        match v {
            // §1.4: null is never visited.
            Value::Null => Ok(()),
            Value::Map(m) => self.map(m, path, stack),
            Value::Seq(s) => self.seq(s, path, stack),
            leaf => {
                let plain = canonical(leaf).expect("scalar leaves have canonical bytes");
                let encrypt = self.rule.should_encrypt(path, stack, false);
                // §4.1: all leaves are hashed unless mac_only_encrypted.
                if !self.mac_only_encrypted || encrypt {
                    self.hasher.update(&plain.bytes);
                }
                if encrypt {
                    if let Some(env) = self.seal(path, &plain) {
                        *leaf = Value::Str(Text::from(env));
                    }
                }
                Ok(())
            }
        }
    }
}

fn push_comment(stack: &mut [Vec<Text>], text: &Text) {
    if let Some(level) = stack.last_mut() {
        level.push(text.clone());
    }
}

fn clear_level(stack: &mut [Vec<Text>]) {
    if let Some(level) = stack.last_mut() {
        level.clear();
    }
}

/// What the decrypt walk found besides the plaintext.
#[derive(Debug)]
pub struct DecryptWalk {
    /// The MAC computed over the decrypted values (§4.1).
    pub mac: String,
    /// IVs for deterministic re-encryption (§2.4).
    pub stash: IvStash,
    /// Container paths of comments that should have been encrypted but did not decrypt;
    /// they are kept as they are (§1.5). sops logs a warning for each.
    pub unreadable_comments: Vec<KeyPath>,
}

/// Decrypts every selected leaf of `docs` in place (§2–§4). Comments that fail to
/// decrypt are kept as they are and reported (§1.5).
pub fn decrypt_documents(
    docs: &mut [Mapping],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
) -> Result<DecryptWalk, CoreError> {
    decrypt_documents_keeping(docs, key, rule, mac_only_encrypted, true)
}

/// [`decrypt_documents`], remembering IVs only when `keep_ivs` (a plain decryption
/// that will not re-encrypt skips the per-value bookkeeping).
pub fn decrypt_documents_keeping(
    docs: &mut [Mapping],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
    keep_ivs: bool,
) -> Result<DecryptWalk, CoreError> {
    let cipher = FileCipher::new(key);
    let mut w = Decryptor {
        cipher: &cipher,
        rule,
        mac_only_encrypted,
        keep_ivs,
        stash: IvStash::default(),
        hasher: MacHasher::new(mac_only_encrypted),
        unreadable_comments: Vec::new(),
    };
    for doc in docs {
        w.map(doc, &mut Vec::new(), &mut Vec::new())?;
    }
    Ok(DecryptWalk {
        mac: w.hasher.finish(),
        stash: w.stash,
        unreadable_comments: w.unreadable_comments,
    })
}

struct Decryptor<'a> {
    /// The file's data key, its AES key schedule expanded once for all values.
    cipher: &'a FileCipher<'a>,
    rule: &'a Rule,
    mac_only_encrypted: bool,
    keep_ivs: bool,
    stash: IvStash,
    hasher: MacHasher,
    unreadable_comments: Vec<KeyPath>,
}

impl Decryptor<'_> {
    /// A comment item: decrypted when selected; any failure keeps it as is (§1.5).
    fn comment(&mut self, path: &[String], text: &Text, stack: &[Vec<Text>]) -> Option<Text> {
        if text.is_empty() || !self.rule.should_encrypt(path, stack, true) {
            return None;
        }
        let aad = crate::core::tree::aad_of(path);
        let decrypted = self
            .cipher
            .open(text.expose_secret(), aad.as_bytes())
            .ok()
            .and_then(|opened| {
                let text = match cipher::parse_typed(opened.tag, &opened.plaintext).ok()? {
                    Plain::Comment(t) => t,
                    Plain::Value(v) => Text::new(canonical(&v)?.bytes.to_vec()),
                };
                Some((text, opened))
            });
        match decrypted {
            Some((text, opened)) => {
                if self.keep_ivs {
                    self.stash.insert(
                        &aad,
                        &canonical_comment(&text),
                        &opened.plaintext,
                        &opened.iv,
                    );
                }
                Some(text)
            }
            None => {
                self.unreadable_comments.push(KeyPath(path.to_vec()));
                None
            }
        }
    }

    /// A scalar leaf (never null, mapping or sequence).
    fn leaf(
        &mut self,
        v: &Value,
        path: &[String],
        stack: &[Vec<Text>],
    ) -> Result<Plain, CoreError> {
        let encrypted = self.rule.should_encrypt(path, stack, false);
        let plain = if !encrypted {
            Plain::Value(v.clone())
        } else {
            match v {
                // §1.4: an empty string is returned as it is.
                Value::Str(t) if t.is_empty() => Plain::Value(v.clone()),
                Value::Str(t) => {
                    let aad = crate::core::tree::aad_of(path);
                    let fail = |failure| CoreError::DecryptValue {
                        path: KeyPath(path.to_vec()),
                        failure,
                    };
                    let opened = self
                        .cipher
                        .open(t.expose_secret(), aad.as_bytes())
                        .map_err(fail)?;
                    if !self.keep_ivs {
                        // Strings take the plaintext buffer as it is (no copy).
                        cipher::parse_typed_owned(opened.tag, opened.plaintext).map_err(fail)?
                    } else {
                        let plain =
                            cipher::parse_typed(opened.tag, &opened.plaintext).map_err(fail)?;
                        let canon = match &plain {
                            Plain::Value(pv) => canonical(pv),
                            Plain::Comment(c) => Some(canonical_comment(c)),
                        };
                        if let Some(c) = canon {
                            self.stash.insert(&aad, &c, &opened.plaintext, &opened.iv);
                        }
                        plain
                    }
                }
                // §2.3: sops 3.11 panics on a non-string under an encrypted path.
                other => {
                    return Err(CoreError::NotCiphertext {
                        path: KeyPath(path.to_vec()),
                        kind: kind_name(other),
                    })
                }
            }
        };
        // §4.1: hash the re-serialised parsed value; comments never.
        if let Plain::Value(pv) = &plain {
            if !self.mac_only_encrypted || encrypted {
                self.hasher.update_value(pv);
            }
        }
        Ok(plain)
    }

    fn map(
        &mut self,
        m: &mut Mapping,
        path: &mut Vec<String>,
        stack: &mut Vec<Vec<Text>>,
    ) -> Result<(), CoreError> {
        stack.push(Vec::new());
        for entry in &mut m.entries {
            match entry {
                MapEntry::Comment(text) => {
                    push_comment(stack, text);
                    if let Some(plain) = self.comment(path, text, stack) {
                        *text = plain;
                    }
                }
                MapEntry::Pair { key, value } => {
                    path.push(key.clone());
                    match value {
                        Value::Null => {}
                        Value::Map(inner) => self.map(inner, path, stack)?,
                        Value::Seq(inner) => self.seq(inner, path, stack)?,
                        leaf => {
                            *leaf = match self.leaf(leaf, path, stack)? {
                                Plain::Value(v) => v,
                                // A comment-typed value under a key: keep its text.
                                Plain::Comment(c) => Value::Str(c),
                            }
                        }
                    }
                    path.pop();
                    clear_level(stack);
                }
            }
        }
        stack.pop();
        Ok(())
    }

    fn seq(
        &mut self,
        s: &mut Sequence,
        path: &mut Vec<String>,
        stack: &mut Vec<Vec<Text>>,
    ) -> Result<(), CoreError> {
        stack.push(Vec::new());
        for item in &mut s.items {
            match item {
                SeqEntry::Comment(text) => {
                    push_comment(stack, text);
                    if let Some(plain) = self.comment(path, text, stack) {
                        *text = plain;
                    }
                }
                SeqEntry::Value(v) => {
                    match v {
                        Value::Null => {}
                        Value::Map(inner) => self.map(inner, path, stack)?,
                        Value::Seq(inner) => self.seq(inner, path, stack)?,
                        leaf => match self.leaf(leaf, path, stack)? {
                            Plain::Value(pv) => *leaf = pv,
                            // §3.3: `- ENC[…type:comment]` decrypts to a comment again,
                            // after being judged as a non-comment item.
                            Plain::Comment(c) => *item = SeqEntry::Comment(c),
                        },
                    }
                    clear_level(stack);
                }
            }
        }
        stack.pop();
        Ok(())
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Time(_) => "time",
        Value::Str(_) => "string",
        Value::Map(_) => "map",
        Value::Seq(_) => "seq",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metadata::SelectionRule;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use rand_core::{CryptoRng, RngCore};

    struct CountingRng(u8);
    impl RngCore for CountingRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(1);
            u64::from(self.0)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for CountingRng {}

    fn sample() -> Mapping {
        let mut inner = Mapping::new();
        inner.entries.push(MapEntry::Comment(Text::from(" inner")));
        inner.push("b", Value::Int(3));
        inner.push("c_unencrypted", Value::str("clear"));
        let mut m = Mapping::new();
        m.entries.push(MapEntry::Comment(Text::from(" top")));
        m.push("a", Value::Map(inner));
        m.push("empty", Value::str(""));
        m.push("nothing", Value::Null);
        m.push(
            "list",
            Value::Seq(Sequence {
                items: vec![
                    SeqEntry::Comment(Text::from(" in list")),
                    SeqEntry::Value(Value::Bool(true)),
                    SeqEntry::Value(Value::Float(1.5)),
                ],
            }),
        );
        m
    }

    #[test]
    fn encrypt_then_decrypt_restores_tree_and_mac() {
        let key = DataKey::from_bytes([1; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let mut docs = vec![sample()];
        let mac =
            encrypt_documents(&mut docs, &key, &rule, false, None, &mut CountingRng(0)).unwrap();
        let m = &docs[0];
        assert!(
            matches!(&m.entries[0], MapEntry::Comment(t) if t.as_str().unwrap().starts_with("ENC["))
        );
        assert_eq!(m.get("empty"), Some(&Value::str("")));
        assert_eq!(m.get("nothing"), Some(&Value::Null));
        let a = m.get("a").unwrap().as_map().unwrap();
        assert_eq!(a.get("c_unencrypted"), Some(&Value::str("clear")));
        // §3.3: the list comment became a string element.
        let Some(Value::Seq(list)) = m.get("list") else {
            panic!()
        };
        assert!(
            matches!(&list.items[0], SeqEntry::Value(Value::Str(t)) if t.as_str().unwrap().ends_with("type:comment]"))
        );
        let walk = decrypt_documents(&mut docs, &key, &rule, false).unwrap();
        assert_eq!(mac, walk.mac);
        assert_eq!(docs[0], sample());
        assert_eq!(walk.stash.len(), 6);
        assert!(walk.unreadable_comments.is_empty());
    }

    #[test]
    fn stash_makes_reencryption_identical() {
        let key = DataKey::from_bytes([1; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let mut docs = vec![sample()];
        encrypt_documents(&mut docs, &key, &rule, false, None, &mut CountingRng(0)).unwrap();
        let encrypted = docs.clone();
        let stash = decrypt_documents(&mut docs, &key, &rule, false)
            .unwrap()
            .stash;
        encrypt_documents(
            &mut docs,
            &key,
            &rule,
            false,
            Some(&stash),
            &mut CountingRng(99),
        )
        .unwrap();
        assert_eq!(docs, encrypted);
    }

    #[test]
    fn marker_then_second_comment_in_list_reproduces_sops_mac_mismatch() {
        // §3.3: `list: [# X marker, # second, secret]` with encrypted_comment_regex X.
        let key = DataKey::from_bytes([2; 32]);
        let rule = Rule::compile(&SelectionRule::EncryptedCommentRegex("X".into())).unwrap();
        let mut m = Mapping::new();
        m.push(
            "list",
            Value::Seq(Sequence {
                items: vec![
                    SeqEntry::Comment(Text::from(" X marker")),
                    SeqEntry::Comment(Text::from(" second")),
                    SeqEntry::Value(Value::str("secret")),
                ],
            }),
        );
        let mut docs = vec![m];
        let mac =
            encrypt_documents(&mut docs, &key, &rule, false, None, &mut CountingRng(0)).unwrap();
        let walk = decrypt_documents(&mut docs, &key, &rule, false).unwrap();
        assert_ne!(mac, walk.mac, "sops reports a MAC mismatch on this file");
        let Some(Value::Seq(list)) = docs[0].get("list") else {
            panic!()
        };
        // The secret was judged clear on decryption: its ciphertext is left in place.
        assert!(
            matches!(&list.items[2], SeqEntry::Value(Value::Str(t)) if t.as_str().unwrap().starts_with("ENC["))
        );
    }

    #[test]
    fn non_canonical_plaintext_never_lends_its_iv() {
        // A hand-made `type:float` value `1.50` re-encrypts as `1.5`; reusing its IV
        // for different bytes under the same key would be GCM nonce reuse.
        let key = DataKey::from_bytes([4; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let hand_made = Canonical {
            tag: TypeTag::Float,
            bytes: zeroize::Zeroizing::new(b"1.50".to_vec()),
        };
        let env = cipher::seal(&key, &[8; IV_LEN], b"f:", &hand_made);
        let mut m = Mapping::new();
        m.push("f", Value::str(&env));
        let mut docs = vec![m];
        let walk = decrypt_documents(&mut docs, &key, &rule, false).unwrap();
        assert_eq!(docs[0].get("f"), Some(&Value::Float(1.5)));
        assert!(walk.stash.is_empty());
        encrypt_documents(
            &mut docs,
            &key,
            &rule,
            false,
            Some(&walk.stash),
            &mut CountingRng(0),
        )
        .unwrap();
        let again = docs[0].get("f").unwrap().as_str().unwrap();
        assert!(!again.contains(&STANDARD.encode([8u8; IV_LEN])));
    }

    #[test]
    fn clear_comments_are_forgiven_and_reported() {
        // §1.5: a comment that was never encrypted (Python sops 1.x) is kept as it is.
        let key = DataKey::from_bytes([2; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let mut inner = Mapping::new();
        inner
            .entries
            .push(MapEntry::Comment(Text::from(" plain note")));
        inner.push("empty", Value::str(""));
        let mut m = Mapping::new();
        m.push("a", Value::Map(inner));
        let before = m.clone();
        let mut docs = vec![m];
        let walk = decrypt_documents(&mut docs, &key, &rule, false).unwrap();
        assert_eq!(docs[0], before);
        assert_eq!(walk.unreadable_comments, vec![KeyPath(vec!["a".into()])]);
    }

    #[test]
    fn marker_comments_select_the_next_item_and_its_subtree() {
        // §3.2 with unencrypted_comment_regex: the marker and everything under the next
        // item stay clear; the item after that is encrypted again.
        let key = DataKey::from_bytes([2; 32]);
        let rule =
            Rule::compile(&SelectionRule::UnencryptedCommentRegex("^ *keep".into())).unwrap();
        let mut sub = Mapping::new();
        sub.push("deep", Value::str("d"));
        let mut m = Mapping::new();
        m.entries.push(MapEntry::Comment(Text::from(" keep clear")));
        m.push("marked", Value::Map(sub.clone()));
        m.push("next", Value::str("n"));
        let mut docs = vec![m];
        encrypt_documents(&mut docs, &key, &rule, false, None, &mut CountingRng(0)).unwrap();
        let d = &docs[0];
        assert_eq!(d.entries[0], MapEntry::Comment(Text::from(" keep clear")));
        assert_eq!(d.get("marked"), Some(&Value::Map(sub)));
        assert!(d.get("next").unwrap().as_str().unwrap().starts_with("ENC["));
    }

    #[test]
    fn comment_ciphertext_matching_unencrypted_comment_regex_is_refused() {
        // §3.2: sops aborts when an encrypted comment happens to match the regex.
        let key = DataKey::from_bytes([2; 32]);
        let rule = Rule::compile(&SelectionRule::UnencryptedCommentRegex("^ENC".into())).unwrap();
        let mut m = Mapping::new();
        m.entries.push(MapEntry::Comment(Text::from(" hello")));
        m.push("k", Value::str("v"));
        let err =
            encrypt_documents(&mut [m], &key, &rule, false, None, &mut CountingRng(0)).unwrap_err();
        assert!(matches!(
            err,
            CoreError::CommentCiphertextMatchesRule { .. }
        ));
        assert_eq!(err.exit_code(), 23);
    }

    #[test]
    fn plain_int_under_encrypted_path_is_not_ciphertext() {
        let key = DataKey::from_bytes([2; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let mut m = Mapping::new();
        m.push("n", Value::Int(5));
        let err = decrypt_documents(&mut [m], &key, &rule, false).unwrap_err();
        assert!(matches!(err, CoreError::NotCiphertext { kind: "int", .. }));
    }
}
