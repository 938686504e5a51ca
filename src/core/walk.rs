//! The encrypt and decrypt walks over the document tree (spec §3.2, §3.3, §4.1).
//!
//! Both walks visit leaves depth-first in file order, keep sops' comment stack, apply
//! the selection rule, and feed the MAC. They reproduce sops 3.11's quirks on
//! purpose: an encrypted comment inside a sequence becomes a `Str("ENC[…type:comment]")`
//! element (§3.3), and on decryption that element counts as a non-comment item, so
//! comment-regex rules can disagree between the two walks exactly as in sops.

use super::cipher::{
    self, canonical, canonical_comment, Canonical, Envelope, Opened, Opener, Plain, TypeTag, IV_LEN,
};
use super::error::{CoreError, ValueFailure};
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
    let mut w = Encryptor {
        key,
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
    key: &'a DataKey,
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
        Some(cipher::seal(self.key, &iv, aad.as_bytes(), plain))
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

/// An envelope the decrypt walk will meet, with the AAD it would open it with, and
/// the result once a batch opener has opened it.
pub struct SealedValue<'a> {
    aad: String,
    /// The text the envelope was found in (its address identifies it to the walk).
    text: &'a [u8],
    envelope: Envelope<'a>,
    opened: Option<Result<Opened, ValueFailure>>,
}

impl SealedValue<'_> {
    /// Opens it and keeps the result. Values are independent of each other, so a shell
    /// may open a batch of them on several threads (the core never starts one, STYLE 1).
    pub fn open(&mut self, opener: &Opener) {
        self.opened = Some(opener.open_envelope(self.envelope, self.aad.as_bytes()));
    }
}

/// Opens a batch of [`SealedValue`]s in place (each result stays with its value, so no
/// order can be lost); a value left unopened is opened by the walk itself.
pub type BatchOpen<'f> = &'f (dyn Fn(&Opener, &mut [SealedValue<'_>]) + Sync);

/// Every non-empty string leaf and comment of `docs` that has an envelope's shape, in
/// the order the decrypt walk visits them. It is a superset of what the walk opens
/// (the selection rule is not applied here): the walk takes the results in step and
/// drops those of values it leaves sealed.
pub fn sealed_values(docs: &[Mapping]) -> Vec<SealedValue<'_>> {
    fn text<'a>(out: &mut Vec<SealedValue<'a>>, path: &[&str], t: &'a Text) {
        let text = t.expose_secret();
        if let Some(envelope) = Envelope::find(text) {
            out.push(SealedValue {
                aad: crate::core::tree::aad_of(path),
                text,
                envelope,
                opened: None,
            });
        }
    }
    fn value<'a>(out: &mut Vec<SealedValue<'a>>, path: &mut Vec<&'a str>, v: &'a Value) {
        match v {
            Value::Map(m) => map(out, path, m),
            Value::Seq(s) => {
                for item in &s.items {
                    match item {
                        SeqEntry::Comment(t) => text(out, path, t),
                        SeqEntry::Value(v) => value(out, path, v),
                    }
                }
            }
            Value::Str(t) => text(out, path, t),
            _ => {}
        }
    }
    fn map<'a>(out: &mut Vec<SealedValue<'a>>, path: &mut Vec<&'a str>, m: &'a Mapping) {
        for entry in &m.entries {
            match entry {
                MapEntry::Comment(t) => text(out, path, t),
                MapEntry::Pair { key, value: v } => {
                    path.push(key);
                    value(out, path, v);
                    path.pop();
                }
            }
        }
    }
    let mut out = Vec::new();
    for doc in docs {
        map(&mut out, &mut Vec::new(), doc);
    }
    out
}

/// A value of [`sealed_values`] opened ahead of the walk.
struct OpenedAhead {
    aad: String,
    /// The address and length of the envelope's text: the walk uses the result only
    /// for the very text it was made from (the tree is not changed before the walk
    /// reaches it), which also tells it, without parsing again, which texts were listed.
    at: (usize, usize),
    /// `None` when the batch opener left it: the walk opens it then.
    result: Option<Result<Opened, ValueFailure>>,
}

/// [`OpenedAhead`] values in walk order.
type Prefetched = std::iter::Peekable<std::vec::IntoIter<OpenedAhead>>;

/// [`decrypt_documents_keeping`] with the envelopes opened first, as one batch by
/// `open_batch` (which may use threads); the walk then takes each result in turn.
pub fn decrypt_documents_batched(
    docs: &mut [Mapping],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
    keep_ivs: bool,
    open_batch: BatchOpen<'_>,
) -> Result<DecryptWalk, CoreError> {
    let opener = Opener::new(key);
    let mut sealed = sealed_values(docs);
    open_batch(&opener, &mut sealed);
    let prefetched = sealed
        .into_iter()
        .map(|s| OpenedAhead {
            at: (s.text.as_ptr() as usize, s.text.len()),
            aad: s.aad,
            result: s.opened,
        })
        .collect::<Vec<_>>()
        .into_iter()
        .peekable();
    walk_decrypt(
        docs,
        &opener,
        rule,
        mac_only_encrypted,
        keep_ivs,
        Some(prefetched),
    )
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
    let opener = Opener::new(key);
    walk_decrypt(docs, &opener, rule, mac_only_encrypted, keep_ivs, None)
}

fn walk_decrypt(
    docs: &mut [Mapping],
    opener: &Opener,
    rule: &Rule,
    mac_only_encrypted: bool,
    keep_ivs: bool,
    prefetched: Option<Prefetched>,
) -> Result<DecryptWalk, CoreError> {
    let mut w = Decryptor {
        opener,
        rule,
        mac_only_encrypted,
        keep_ivs,
        prefetched,
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
    opener: &'a Opener<'a>,
    rule: &'a Rule,
    mac_only_encrypted: bool,
    keep_ivs: bool,
    /// Opened ahead of the walk; `None` opens each value when met.
    prefetched: Option<Prefetched>,
    stash: IvStash,
    hasher: MacHasher,
    unreadable_comments: Vec<KeyPath>,
}

impl Decryptor<'_> {
    /// The prefetched result for `text` when it is the next one listed by
    /// [`sealed_values`]: called for every string leaf and comment, in walk order,
    /// whether selected or not.
    fn take_prefetched(&mut self, text: &Text) -> Option<OpenedAhead> {
        let bytes = text.expose_secret();
        self.prefetched
            .as_mut()?
            .next_if(|ahead| ahead.at == (bytes.as_ptr() as usize, bytes.len()))
    }

    fn take_prefetched_value(&mut self, v: &Value) -> Option<OpenedAhead> {
        match v {
            Value::Str(t) => self.take_prefetched(t),
            _ => None,
        }
    }

    /// Opens `text` under the AAD of `path`, using the prefetched result when it was
    /// made from this text with that AAD (always, unless the walks fell out of step).
    fn open_at(
        &self,
        prefetched: Option<OpenedAhead>,
        path: &[String],
        text: &[u8],
    ) -> Result<Opened, ValueFailure> {
        match prefetched {
            Some(OpenedAhead {
                aad,
                at,
                result: Some(result),
            }) if at == (text.as_ptr() as usize, text.len())
                && crate::core::tree::aad_is(&aad, path) =>
            {
                result
            }
            _ => self
                .opener
                .open(text, crate::core::tree::aad_of(path).as_bytes()),
        }
    }

    /// [`Self::open_at`] with the AAD already built.
    fn open(
        &self,
        prefetched: Option<OpenedAhead>,
        aad: &str,
        text: &[u8],
    ) -> Result<Opened, ValueFailure> {
        match prefetched {
            Some(OpenedAhead {
                aad: ahead_aad,
                at,
                result: Some(result),
            }) if ahead_aad == aad && at == (text.as_ptr() as usize, text.len()) => result,
            _ => self.opener.open(text, aad.as_bytes()),
        }
    }

    /// A comment item: decrypted when selected; any failure keeps it as is (§1.5).
    fn comment(&mut self, path: &[String], text: &Text, stack: &[Vec<Text>]) -> Option<Text> {
        let prefetched = self.take_prefetched(text);
        if text.is_empty() || !self.rule.should_encrypt(path, stack, true) {
            return None;
        }
        let aad = crate::core::tree::aad_of(path);
        let decrypted = self
            .open(prefetched, &aad, text.expose_secret())
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
        prefetched: Option<OpenedAhead>,
    ) -> Result<Plain, CoreError> {
        let encrypted = self.rule.should_encrypt(path, stack, false);
        let plain = if !encrypted {
            Plain::Value(v.clone())
        } else {
            match v {
                // §1.4: an empty string is returned as it is.
                Value::Str(t) if t.is_empty() => Plain::Value(v.clone()),
                Value::Str(t) => {
                    let fail = |failure| CoreError::DecryptValue {
                        path: KeyPath(path.to_vec()),
                        failure,
                    };
                    let opened = self
                        .open_at(prefetched, path, t.expose_secret())
                        .map_err(fail)?;
                    if !self.keep_ivs {
                        cipher::parse_typed_owned(opened.tag, opened.plaintext).map_err(fail)?
                    } else {
                        let plain =
                            cipher::parse_typed(opened.tag, &opened.plaintext).map_err(fail)?;
                        let canon = match &plain {
                            Plain::Value(pv) => canonical(pv),
                            Plain::Comment(c) => Some(canonical_comment(c)),
                        };
                        if let Some(c) = canon {
                            let aad = crate::core::tree::aad_of(path);
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
                match pv {
                    // A string's canonical bytes are its bytes: hashed without a copy.
                    Value::Str(t) => self.hasher.update(t.expose_secret()),
                    other => {
                        if let Some(c) = canonical(other) {
                            self.hasher.update(&c.bytes);
                        }
                    }
                }
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
                            let prefetched = self.take_prefetched_value(leaf);
                            *leaf = match self.leaf(leaf, path, stack, prefetched)? {
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
                        leaf => {
                            let prefetched = self.take_prefetched_value(leaf);
                            match self.leaf(leaf, path, stack, prefetched)? {
                                Plain::Value(pv) => *leaf = pv,
                                // §3.3: `- ENC[…type:comment]` decrypts to a comment
                                // again, after being judged as a non-comment item.
                                Plain::Comment(c) => *item = SeqEntry::Comment(c),
                            }
                        }
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

    /// `sample()` plus a list of strings (one AAD for several values) and a clear value
    /// that has an envelope's shape, encrypted under `rule`.
    fn sealed_sample(rule: &Rule, key: &DataKey) -> Vec<Mapping> {
        let mut m = sample();
        let strings = ["x", "y", "z"].map(|s| SeqEntry::Value(Value::str(s)));
        m.push(
            "strings",
            Value::Seq(Sequence {
                items: strings.into(),
            }),
        );
        let mut docs = vec![m];
        encrypt_documents(&mut docs, key, rule, false, None, &mut CountingRng(0)).unwrap();
        // A clear value shaped like an envelope: listed by `sealed_values`, never used.
        let lookalike = match docs[0].get("strings") {
            Some(Value::Seq(s)) => match &s.items[0] {
                SeqEntry::Value(v) => v.clone(),
                _ => panic!("a string item"),
            },
            _ => panic!("the list"),
        };
        if !rule.should_encrypt(&["copy_unencrypted".to_string()], &[], false) {
            docs[0].push("copy_unencrypted", lookalike);
        }
        docs
    }

    fn serial_batch(opener: &Opener, values: &mut [SealedValue<'_>]) {
        values.iter_mut().for_each(|v| v.open(opener));
    }

    #[test]
    fn batched_decryption_equals_the_walk_under_every_rule() {
        let key = DataKey::from_bytes([4; 32]);
        let rules = [
            SelectionRule::default(),
            SelectionRule::EncryptedRegex("^(b|strings)$".into()),
            SelectionRule::EncryptedCommentRegex("^ *in".into()),
            SelectionRule::UnencryptedCommentRegex("^ *top".into()),
        ];
        for selection in rules {
            let rule = Rule::compile(&selection).unwrap();
            let sealed = sealed_sample(&rule, &key);
            let mut walked = sealed.clone();
            let expected = decrypt_documents(&mut walked, &key, &rule, false).unwrap();
            let mut batched = sealed.clone();
            let got =
                decrypt_documents_batched(&mut batched, &key, &rule, false, true, &serial_batch)
                    .unwrap();
            assert_eq!(batched, walked, "{selection:?}");
            assert_eq!(got.mac, expected.mac, "{selection:?}");
            assert_eq!(got.stash.len(), expected.stash.len(), "{selection:?}");
            assert_eq!(got.unreadable_comments, expected.unreadable_comments);
            // The clear lookalike was opened ahead (when it is one) but left as it was.
            assert_eq!(
                batched[0].get("copy_unencrypted"),
                sealed[0].get("copy_unencrypted"),
                "{selection:?}"
            );
        }
    }

    #[test]
    fn values_a_batch_opener_leaves_are_opened_by_the_walk() {
        let key = DataKey::from_bytes([5; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let sealed = sealed_sample(&rule, &key);
        let mut walked = sealed.clone();
        let expected = decrypt_documents(&mut walked, &key, &rule, false).unwrap();
        let nothing = |_: &Opener, _: &mut [SealedValue<'_>]| {};
        let every_other = |o: &Opener, v: &mut [SealedValue<'_>]| {
            v.iter_mut().step_by(2).for_each(|v| v.open(o));
        };
        let batches: [BatchOpen<'_>; 2] = [&nothing, &every_other];
        for batch in batches {
            let mut docs = sealed.clone();
            let got =
                decrypt_documents_batched(&mut docs, &key, &rule, false, false, batch).unwrap();
            assert_eq!(docs, walked);
            assert_eq!(got.mac, expected.mac);
        }
    }

    #[test]
    fn batched_decryption_reports_a_tampered_value_like_the_walk() {
        let key = DataKey::from_bytes([6; 32]);
        let rule = Rule::compile(&SelectionRule::default()).unwrap();
        let mut sealed = sealed_sample(&rule, &key);
        // `a.b`'s ciphertext moved to `empty` fails authentication under the new path.
        let b = sealed[0]
            .get("a")
            .unwrap()
            .as_map()
            .unwrap()
            .get("b")
            .unwrap()
            .clone();
        *sealed[0].get_mut("empty").unwrap() = b;
        let walk_err = decrypt_documents(&mut sealed.clone(), &key, &rule, false).unwrap_err();
        let batch_err =
            decrypt_documents_batched(&mut sealed, &key, &rule, false, false, &serial_batch)
                .unwrap_err();
        assert_eq!(batch_err.to_string(), walk_err.to_string());
        assert!(batch_err.to_string().contains("empty"), "{batch_err}");
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
