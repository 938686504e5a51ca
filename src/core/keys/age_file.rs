//! Opening the small age files that sops stores in `enc`, without the age crate's
//! streaming reader (issue 5 (a)).
//!
//! Why: a one-file decrypt spent half of its instructions (1.15M of 2.19M) in the age
//! crate, and only the X25519 key agreement among them (0.63M) is unavoidable. The
//! crate recomputes the identity's public key at every unwrap (a fixed-base scalar
//! multiplication, ~40 µs), and its stream reader zero-fills a 64 KiB buffer (12 page
//! faults) for a 32-byte payload. This module reads the one shape every age encoder writes for such a payload
//! (armored, strict stanzas, one payload chunk) and does only what the age v1 format
//! requires: X25519, HKDF-SHA-256 and ChaCha20-Poly1305 for the file key, the header
//! HMAC-SHA-256, then one ChaCha20-Poly1305 STREAM chunk.
//!
//! Guarantees:
//! * Whatever it returns as plaintext has passed the stanza's AEAD tag, the header MAC and
//!   the payload chunk's tag, under a file key that only one of our identities could
//!   unwrap.
//! * Anything outside that shape (CRLF armor, legacy stanza bodies, an `scrypt` stanza,
//!   several payload chunks, an all-zero shared secret) and every failure after a stanza
//!   opened gives [`Opened::Unusual`]: the caller then runs the age crate on the same
//!   text, so the answer and the error message are the crate's own.
//! * [`Opened::NotForUs`] is only returned when every X25519 stanza was tried with every
//!   identity and its own public key, as the age crate does, so "no matching key" means
//!   the same here and there.
//!
//! One deliberate difference: the HKDF salt is first built from the recipient that sops
//! recorded next to `enc`, and the identity's own public key is computed only when that
//! fails. A stanza therefore also opens when its writer salted it with that recorded
//! recipient instead of the real one; only a writer who deliberately wrote a wrong key
//! can produce such a file, and its payload is still authenticated under a key that
//! needed our secret. Files from sops, age and rage are salted with the real key.

use super::age_x25519::{decode_recipient, X25519Identity};
use age_core::format::read::age_stanza;
use age_core::primitives::{aead_decrypt, hkdf};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::PublicKey;
use zeroize::Zeroizing;

const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----\n";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
const ARMOR_COLUMNS: usize = 64;
const MAGIC: &[u8] = b"age-encryption.org/v1\n";
const MAC_PREFIX: &[u8] = b"--- ";
const X25519_TAG: &str = "X25519";
const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const FILE_KEY_BYTES: usize = 16;
const TAG_BYTES: usize = 16;
const PAYLOAD_NONCE_BYTES: usize = 16;
const CHUNK_BYTES: usize = 64 * 1024;

/// What [`open`] found.
pub(super) enum Opened {
    /// The payload, authenticated.
    Plaintext(Zeroizing<Vec<u8>>),
    /// A well-formed file whose X25519 stanzas none of the identities opens.
    NotForUs,
    /// Not the common shape, or a failure the age crate should report in its own words.
    Unusual,
}

/// Opens the armored age file `armored` with `identities`. `recorded_recipient` is the
/// public key sops stored beside it (`sops.age[].recipient`), used as a first guess for
/// the HKDF salt (see the module docs).
pub(super) fn open(
    armored: &str,
    recorded_recipient: &str,
    identities: &[&X25519Identity],
) -> Opened {
    let Some(binary) = dearmor(armored) else {
        return Opened::Unusual;
    };
    let Some(header) = Header::parse(&binary) else {
        return Opened::Unusual;
    };
    let recorded = decode_recipient(recorded_recipient);
    let file_key = match header.unwrap_file_key(identities, recorded.as_ref()) {
        Unwrapped::FileKey(k) => k,
        Unwrapped::NoMatch => return Opened::NotForUs,
        Unwrapped::Unusual => return Opened::Unusual,
    };
    if !header.mac_is_valid(&file_key) {
        return Opened::Unusual;
    }
    match open_single_chunk(header.payload, &file_key) {
        Some(plaintext) => Opened::Plaintext(plaintext),
        None => Opened::Unusual,
    }
}

/// Decodes the strict armor every age encoder writes: the begin line, full 64-column
/// lines of padded standard base64, one shorter (or full) last line, the end line, and
/// at most one final newline. `None` for anything else (the age crate is more lenient).
fn dearmor(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body = text.strip_prefix(ARMOR_BEGIN)?;
    let body = body.strip_suffix('\n').unwrap_or(body);
    let body = body.strip_suffix(ARMOR_END)?;
    let body = body.strip_suffix('\n')?;
    let mut encoded = Zeroizing::new(Vec::with_capacity(body.len()));
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if line.is_empty() || line.len() > ARMOR_COLUMNS || (!last && line.len() != ARMOR_COLUMNS) {
            return None;
        }
        encoded.extend_from_slice(line.as_bytes());
    }
    // The armor is not secret (it is ciphertext), but the decoded buffer is wiped anyway
    // like every buffer on this path.
    STANDARD.decode(&encoded[..]).ok().map(Zeroizing::new)
}

/// The parsed age v1 header of a complete file.
struct Header<'a> {
    /// The header bytes the MAC covers: from the magic line through `---`.
    mac_input: &'a [u8],
    mac: [u8; 32],
    /// (ephemeral share, wrapped file key) of each X25519 stanza, in file order.
    x25519: Vec<([u8; 32], [u8; FILE_KEY_BYTES + TAG_BYTES])>,
    payload: &'a [u8],
}

enum Unwrapped {
    FileKey(Zeroizing<[u8; FILE_KEY_BYTES]>),
    NoMatch,
    Unusual,
}

impl<'a> Header<'a> {
    fn parse(file: &'a [u8]) -> Option<Header<'a>> {
        let mut rest = file.strip_prefix(MAGIC)?;
        let mut x25519 = Vec::new();
        while !rest.starts_with(b"---") {
            // The strict (non-legacy) stanza grammar; legacy bodies go to the crate.
            let (after, stanza) = age_stanza(rest).ok()?;
            match stanza.tag {
                X25519_TAG => {
                    let [share] = stanza.args[..] else {
                        return None;
                    };
                    let share = decode_exact::<32>(share)?;
                    let body: [u8; FILE_KEY_BYTES + TAG_BYTES] = stanza.body().try_into().ok()?;
                    x25519.push((share, body));
                }
                // An scrypt stanza must be alone (age's rule): let the crate decide.
                "scrypt" => return None,
                // Other stanzas (grease, other recipient types) are skipped, as age does.
                _ => {}
            }
            rest = after;
        }
        let mac_end = file.len() - rest.len() + 3;
        let line = rest.strip_prefix(MAC_PREFIX)?;
        let (encoded_mac, payload) = (line.get(..43)?, line.get(43..)?);
        let payload = payload.strip_prefix(b"\n")?;
        let mac = decode_exact::<32>(std::str::from_utf8(encoded_mac).ok()?)?;
        Some(Header {
            mac_input: &file[..mac_end],
            mac,
            x25519,
            payload,
        })
    }

    /// Tries every identity on every X25519 stanza, identity by identity as the age
    /// crate does, and returns the first file key that opens.
    fn unwrap_file_key(
        &self,
        identities: &[&X25519Identity],
        recorded: Option<&PublicKey>,
    ) -> Unwrapped {
        for identity in identities {
            for (share, wrapped) in &self.x25519 {
                let share = PublicKey::from(*share);
                let shared = identity.secret().diffie_hellman(&share);
                // Without an early exit, so that timing says nothing about the secret.
                if shared.as_bytes().iter().fold(0u8, |acc, &b| acc | b) == 0 {
                    // age refuses a non-contributory share with its own error.
                    return Unwrapped::Unusual;
                }
                let try_with = |public: &PublicKey| {
                    let mut salt = [0u8; 64];
                    salt[..32].copy_from_slice(share.as_bytes());
                    salt[32..].copy_from_slice(public.as_bytes());
                    let wrap_key = Zeroizing::new(hkdf(&salt, X25519_LABEL, shared.as_bytes()));
                    aead_decrypt(&wrap_key, FILE_KEY_BYTES, wrapped)
                        .ok()
                        .map(Zeroizing::new)
                };
                let own = identity.cached_public();
                let opened = match (own, recorded) {
                    (Some(own), _) => try_with(own),
                    (None, Some(guess)) => try_with(guess).or_else(|| {
                        let own = identity.public();
                        (own != guess).then(|| try_with(own)).flatten()
                    }),
                    (None, None) => try_with(identity.public()),
                };
                if let Some(key) = opened {
                    let mut file_key = Zeroizing::new([0u8; FILE_KEY_BYTES]);
                    file_key.copy_from_slice(&key);
                    return Unwrapped::FileKey(file_key);
                }
            }
        }
        Unwrapped::NoMatch
    }

    fn mac_is_valid(&self, file_key: &[u8; FILE_KEY_BYTES]) -> bool {
        let mac_key = Zeroizing::new(hkdf(&[], b"header", file_key));
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key[..]) else {
            return false;
        };
        mac.update(self.mac_input);
        // Constant-time comparison inside `verify_slice`.
        mac.verify_slice(&self.mac).is_ok()
    }
}

/// Decrypts a payload of exactly one, final, non-empty STREAM chunk (64 KiB at most).
fn open_single_chunk(
    payload: &[u8],
    file_key: &[u8; FILE_KEY_BYTES],
) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, chunk) = payload.split_at_checked(PAYLOAD_NONCE_BYTES)?;
    if chunk.len() <= TAG_BYTES || chunk.len() > CHUNK_BYTES + TAG_BYTES {
        return None;
    }
    let payload_key = Zeroizing::new(hkdf(nonce, b"payload", file_key));
    let cipher = ChaCha20Poly1305::new((&*payload_key).into());
    // Chunk nonce: 11-byte big-endian counter (0) then the last-chunk flag.
    let mut chunk_nonce = [0u8; 12];
    chunk_nonce[11] = 1;
    cipher
        .decrypt((&chunk_nonce).into(), chunk)
        .ok()
        .map(Zeroizing::new)
}

/// Decodes canonical unpadded base64 of exactly `N` bytes (age's argument encoding).
fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    // `decode_slice` into a slightly larger buffer catches over-long input; the
    // engine rejects padding and non-zero trailing bits (canonical form).
    let mut out = [0u8; 64];
    let n = STANDARD_NO_PAD.decode_slice(text, &mut out).ok()?;
    (n == N).then(|| out[..N].try_into().expect("length checked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::keys::{AgeIdentities, AgeRecipient, KeyBackend, KeyError};
    use crate::core::metadata::MasterKey;
    use age::secrecy::ExposeSecret;
    use std::io::Read;

    /// The first identity line of a key file.
    fn identity(key_file: &str) -> X25519Identity {
        let line = key_file.lines().find(|l| !l.starts_with('#')).unwrap();
        X25519Identity::parse(line).unwrap()
    }

    /// (enc, recorded recipient) of the first age entry of a fixture written by sops.
    fn sops_entry() -> (String, String) {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/data/basic.enc.json")).unwrap();
        let age = &file["sops"]["age"][0];
        (
            age["enc"].as_str().unwrap().to_string(),
            age["recipient"].as_str().unwrap().to_string(),
        )
    }

    /// The crate's verdict: the plaintext, "no matching key", or another error.
    fn crate_verdict(enc: &str, id: &X25519Identity) -> Result<Vec<u8>, bool> {
        let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(enc.as_bytes()))
            .map_err(|_| false)?;
        let mut reader = decryptor
            .decrypt(std::iter::once(&id.for_crate as &dyn age::Identity))
            .map_err(|e| matches!(e, age::DecryptError::NoMatchingKeys))?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|_| false)?;
        Ok(out)
    }

    fn plaintext(opened: Opened) -> Vec<u8> {
        match opened {
            Opened::Plaintext(p) => p.to_vec(),
            Opened::NotForUs => panic!("expected a plaintext, got NotForUs"),
            Opened::Unusual => panic!("expected a plaintext, got Unusual"),
        }
    }

    fn armor(binary: &[u8]) -> String {
        let encoded = STANDARD.encode(binary);
        let mut out = String::from(ARMOR_BEGIN);
        for line in encoded.as_bytes().chunks(ARMOR_COLUMNS) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str(ARMOR_END);
        out.push('\n');
        out
    }

    #[test]
    fn an_entry_written_by_sops_opens_directly_with_the_crates_result() {
        let (enc, recorded) = sops_entry();
        let id = identity(include_str!("../../../tests/data/age1.agekey"));
        let direct = plaintext(open(&enc, &recorded, &[&id]));
        assert_eq!(direct.len(), 32, "a sops data key");
        assert_eq!(Some(direct), crate_verdict(&enc, &id).ok());
        // The recorded recipient was right, so the public key was never computed.
        assert!(id.cached_public().is_none());
    }

    #[test]
    fn an_entry_written_by_the_age_crate_opens_directly() {
        // The crate adds a grease stanza of a random unknown type, which must be skipped.
        let id = identity(
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        );
        let public = id.for_crate.to_public().to_string();
        for secret in [&b"k"[..], &[7u8; 32], &[9u8; 33], &[1u8; 64 * 1024]] {
            let MasterKey::Age { enc, .. } =
                AgeRecipient::parse(&public).unwrap().wrap(secret).unwrap()
            else {
                panic!()
            };
            assert_eq!(plaintext(open(&enc, &public, &[&id])), secret);
        }
    }

    #[test]
    fn a_wrong_or_missing_recorded_recipient_still_opens_with_the_own_key() {
        let (enc, _) = sops_entry();
        let id = identity(include_str!("../../../tests/data/age1.agekey"));
        let other = identity(include_str!("../../../tests/data/age2.agekey"));
        let other_public = other.for_crate.to_public().to_string();
        for recorded in [other_public.as_str(), "", "not a recipient"] {
            let fresh = identity(include_str!("../../../tests/data/age1.agekey"));
            assert_eq!(
                Some(plaintext(open(&enc, recorded, &[&fresh]))),
                crate_verdict(&enc, &id).ok()
            );
        }
        // Identities are tried in order; the second one fits.
        assert_eq!(
            plaintext(open(&enc, &other_public, &[&other, &id])).len(),
            32
        );
    }

    #[test]
    fn no_fitting_identity_is_not_for_us() {
        let (enc, recorded) = sops_entry();
        let other = identity(include_str!("../../../tests/data/age2.agekey"));
        assert!(matches!(open(&enc, &recorded, &[&other]), Opened::NotForUs));
        assert!(matches!(open(&enc, &recorded, &[]), Opened::NotForUs));
    }

    #[test]
    fn tampering_goes_to_the_crate_which_refuses_it() {
        let (enc, recorded) = sops_entry();
        let id = identity(include_str!("../../../tests/data/age1.agekey"));
        let binary = dearmor(&enc).unwrap().to_vec();
        let mac_at = binary.windows(4).position(|w| w == b"--- ").unwrap() + 4;
        // One flipped character of the header MAC, one flipped byte of the payload tag.
        let mut bad_mac = binary.clone();
        bad_mac[mac_at] = if bad_mac[mac_at] == b'A' { b'B' } else { b'A' };
        let mut bad_payload = binary.clone();
        *bad_payload.last_mut().unwrap() ^= 1;
        let key_text = include_str!("../../../tests/data/age1.agekey");
        let ids = AgeIdentities::parse(key_text, "age1.agekey").unwrap();
        for tampered in [bad_mac, bad_payload] {
            let enc = armor(&tampered);
            assert!(matches!(open(&enc, &recorded, &[&id]), Opened::Unusual));
            let entry = MasterKey::Age {
                recipient: recorded.clone(),
                enc,
            };
            assert!(matches!(
                ids.unwrap(&entry),
                Err(KeyError::CorruptEntry { .. })
            ));
        }
    }

    #[test]
    fn unusual_shapes_go_to_the_crate_with_the_same_result() {
        let (enc, recorded) = sops_entry();
        let id = identity(include_str!("../../../tests/data/age1.agekey"));
        let key_text = include_str!("../../../tests/data/age1.agekey");
        let ids = AgeIdentities::parse(key_text, "age1.agekey").unwrap();
        let expected = crate_verdict(&enc, &id).ok().unwrap();
        let crlf = enc.replace('\n', "\r\n");
        let no_final_newline = enc.trim_end().to_string();
        for variant in [crlf, format!("  {enc}"), no_final_newline] {
            let entry = MasterKey::Age {
                recipient: recorded.clone(),
                enc: variant.clone(),
            };
            let by_crate = crate_verdict(&variant, &id).ok();
            let ours = ids.unwrap(&entry).ok().flatten().map(|p| p.to_vec());
            assert_eq!(ours, by_crate, "{variant:?}");
        }
        // The direct path accepts the final newline missing, and agrees with the crate.
        assert_eq!(plaintext(open(enc.trim_end(), &recorded, &[&id])), expected);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Whatever is changed in an entry (a byte of the age file, or a character of
        /// its armor), the direct path never disagrees with the age crate: a plaintext
        /// only when the crate gives the same one, "not for us" only when the crate
        /// finds no matching key, and everything else is left to the crate.
        #[test]
        fn a_changed_entry_never_opens_differently_than_with_the_crate(
            crate_written in proptest::bool::ANY,
            in_armor in proptest::bool::ANY,
            at in 0usize..4096,
            byte in proptest::num::u8::ANY,
        ) {
            let (key_text, enc, recorded) = if crate_written {
                let id = age::x25519::Identity::generate();
                let public = id.to_public().to_string();
                let MasterKey::Age { enc, .. } =
                    AgeRecipient::parse(&public).unwrap().wrap(&[5u8; 32]).unwrap()
                else {
                    panic!()
                };
                (id.to_string().expose_secret().to_string(), enc, public)
            } else {
                let (enc, recorded) = sops_entry();
                let key = include_str!("../../../tests/data/age1.agekey");
                (key.to_string(), enc, recorded)
            };
            let changed = if in_armor {
                let mut text = enc.into_bytes();
                let i = at % text.len();
                text[i] = byte;
                String::from_utf8_lossy(&text).into_owned()
            } else {
                let mut binary = dearmor(&enc).unwrap().to_vec();
                let i = at % binary.len();
                binary[i] = byte;
                armor(&binary)
            };
            let id = identity(&key_text);
            match open(&changed, &recorded, &[&id]) {
                Opened::Plaintext(p) => {
                    proptest::prop_assert_eq!(Ok(p.to_vec()), crate_verdict(&changed, &id))
                }
                Opened::NotForUs => {
                    proptest::prop_assert_eq!(Err(true), crate_verdict(&changed, &id))
                }
                Opened::Unusual => {}
            }
        }
    }
}
