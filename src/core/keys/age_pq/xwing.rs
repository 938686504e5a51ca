//! The MLKEM768-X25519 hybrid KEM, i.e. X-Wing (draft-connolly-cfrg-xwing-kem, editor's
//! copy of 2026-03-02, cited below as "X-Wing §…": §5.1 sizes, §5.2 key generation,
//! §5.3 combiner, §5.4 encapsulation, §5.5 decapsulation, §5.6 use in HPKE; the same KEM
//! as MLKEM768-X25519 of draft-ietf-hpke-pq, HPKE KEM id 0x647A), as the HPKE KEM of
//! age's `mlkem768x25519` stanza.
//!
//! Built on RustCrypto's `ml-kem` (FIPS 203) and `x25519-dalek` (RFC 7748), with
//! SHAKE256 and SHA3-256 from `sha3`; the `hpke` crate runs RFC 9180 around it.
//!
//! Guarantees: key expansion, encapsulation and decapsulation follow X-Wing §5 exactly
//! (checked against the draft's test vectors in `vectors.rs`); an encapsulation key
//! whose ML-KEM part fails the FIPS 203 §7.2 modulus check, or whose X25519 part is of
//! low order, is refused when it is parsed; an all-zero X25519 shared secret is an
//! error on both sides, as age v1.3 (Go's `crypto/ecdh`) treats it.
//!
//! Security: the 32-byte seed, the expanded ML-KEM and X25519 secrets, and every shared
//! secret are wiped on drop (`Zeroizing`, `ml-kem`'s `zeroize` feature, `StaticSecret`).
//! Randomness is a parameter: [`encapsulate_derand`] takes the 64-byte `eseed`.

use hpke::generic_array::GenericArray;
use hpke::{Deserializable, HpkeError, Serializable};
use ml_kem::array::typenum::{Sum, Unsigned, U32};
use ml_kem::kem::Decapsulate;
use ml_kem::{EncapsulateDeterministic, EncodedSizeUser, KemCore, MlKem768, B32};
use sha3::digest::{Digest, ExtendableOutput, Update, XofReader};
use sha3::{Sha3_256, Shake256};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// HPKE KEM identifier of MLKEM768-X25519 (X-Wing §"IANA Considerations").
pub(crate) const KEM_ID: u16 = 0x647a;
/// The X-Wing combiner label `\./` `/^\` (X-Wing §5.3), hex 5c2e2f2f5e5c.
const LABEL: &[u8; 6] = b"\\.//^\\";

/// Decapsulation key (the seed), encapsulation key, ciphertext and shared secret
/// sizes (X-Wing §5.1).
pub(crate) const SEED_BYTES: usize = 32;
pub(crate) const PUBLIC_KEY_BYTES: usize = ML_KEM_EK_BYTES + 32;
pub(crate) const CIPHERTEXT_BYTES: usize = ML_KEM_CT_BYTES + 32;
const ML_KEM_EK_BYTES: usize = 1184;
const ML_KEM_CT_BYTES: usize = 1088;

type MlKemEk = <MlKem768 as KemCore>::EncapsulationKey;
type MlKemDk = <MlKem768 as KemCore>::DecapsulationKey;
type MlKemCt = ml_kem::Ciphertext<MlKem768>;
type EkSize = <MlKemEk as EncodedSizeUser>::EncodedSize;
type CtSize = <MlKem768 as KemCore>::CiphertextSize;

/// An X-Wing decapsulation key: the 32-byte seed (what age stores) and its expansion.
#[derive(Clone)]
pub(crate) struct DecapsulationKey {
    seed: Zeroizing<[u8; SEED_BYTES]>,
    dk_m: MlKemDk,
    sk_x: StaticSecret,
    public: EncapsulationKey,
}

/// An X-Wing encapsulation key `pk_M || pk_X` (1216 bytes).
#[derive(Clone)]
pub(crate) struct EncapsulationKey {
    bytes: Box<[u8; PUBLIC_KEY_BYTES]>,
    ek_m: MlKemEk,
    pk_x: X25519Public,
}

/// An X-Wing ciphertext `ct_M || ct_X` (1120 bytes): the HPKE `enc`.
#[derive(Clone)]
pub(crate) struct Ciphertext(Box<[u8; CIPHERTEXT_BYTES]>);

/// Why an X-Wing operation failed (no secret inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XWingError {
    /// The encapsulation key is not 1216 bytes, fails the FIPS 203 §7.2 check, or has
    /// a low-order X25519 part.
    BadEncapsulationKey,
    /// The X25519 shared secret was all zero (a low-order share).
    ZeroSharedSecret,
}

impl DecapsulationKey {
    /// `expandDecapsulationKey(sk)` (X-Wing §5.2): SHAKE256(seed) gives 96 bytes, the
    /// first 64 are ML-KEM-768.KeyGen_internal(d, z) and the last 32 the X25519 secret.
    pub(crate) fn from_seed(seed: &[u8; SEED_BYTES]) -> DecapsulationKey {
        let mut expanded = Zeroizing::new([0u8; 96]);
        Shake256::default()
            .chain(seed)
            .finalize_xof()
            .read(&mut expanded[..]);
        let mut d = B32::default();
        let mut z = B32::default();
        d.copy_from_slice(&expanded[..32]);
        z.copy_from_slice(&expanded[32..64]);
        let (dk_m, ek_m) = MlKem768::generate_deterministic(&d, &z);
        d.as_mut_slice().zeroize();
        z.as_mut_slice().zeroize();
        let mut sk = Zeroizing::new([0u8; 32]);
        sk.copy_from_slice(&expanded[64..]);
        let sk_x = StaticSecret::from(*sk);
        let pk_x = X25519Public::from(&sk_x);
        let mut bytes = Box::new([0u8; PUBLIC_KEY_BYTES]);
        bytes[..ML_KEM_EK_BYTES].copy_from_slice(&ek_m.as_bytes());
        bytes[ML_KEM_EK_BYTES..].copy_from_slice(pk_x.as_bytes());
        DecapsulationKey {
            seed: Zeroizing::new(*seed),
            dk_m,
            sk_x,
            public: EncapsulationKey { bytes, ek_m, pk_x },
        }
    }

    /// The matching encapsulation key (computed at expansion).
    pub(crate) fn public(&self) -> &EncapsulationKey {
        &self.public
    }

    /// `Decapsulate(ct, sk)` (X-Wing §5.5). ML-KEM rejects implicitly (a ciphertext
    /// that is not ours gives an unrelated secret, which the HPKE AEAD then refuses);
    /// an all-zero X25519 secret is an explicit error, as in age v1.3.
    pub(crate) fn decapsulate(&self, ct: &Ciphertext) -> Result<Zeroizing<[u8; 32]>, XWingError> {
        let (ct_m, ct_x) = ct.0.split_at(ML_KEM_CT_BYTES);
        let ct_m = MlKemCt::try_from(ct_m).expect("the split is 1088 bytes");
        let ct_x: [u8; 32] = ct_x.try_into().expect("the split leaves 32 bytes");
        let mut ss_m = self
            .dk_m
            .decapsulate(&ct_m)
            .expect("ML-KEM decapsulation cannot fail");
        let ss_x = self.sk_x.diffie_hellman(&X25519Public::from(ct_x));
        let ss = combiner(&ss_m, ss_x.as_bytes(), &ct_x, self.public.pk_x.as_bytes());
        ss_m.as_mut_slice().zeroize();
        if !ss_x.was_contributory() {
            return Err(XWingError::ZeroSharedSecret);
        }
        Ok(ss)
    }
}

impl EncapsulationKey {
    /// Parses `pk_M || pk_X` (X-Wing §5.1), refusing what no honest key generation
    /// produces (so that encapsulation cannot fail later).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<EncapsulationKey, XWingError> {
        let bytes: Box<[u8; PUBLIC_KEY_BYTES]> = Box::new(
            bytes
                .try_into()
                .map_err(|_| XWingError::BadEncapsulationKey)?,
        );
        let (pk_m, pk_x) = bytes.split_at(ML_KEM_EK_BYTES);
        // FIPS 203 §7.2 "encapsulation key check": every 12-bit coefficient of t̂ (the
        // first 1152 bytes) must be reduced mod q = 3329. X-Wing §5.4 lets
        // encapsulation fail on such a key; refusing it here gives the error a name.
        let reduced = pk_m[..ML_KEM_EK_BYTES - 32].chunks_exact(3).all(|b| {
            let low = u16::from(b[0]) | (u16::from(b[1] & 0x0f) << 8);
            let high = u16::from(b[1] >> 4) | (u16::from(b[2]) << 4);
            low < 3329 && high < 3329
        });
        if !reduced {
            return Err(XWingError::BadEncapsulationKey);
        }
        let pk_x: [u8; 32] = pk_x.try_into().expect("the split leaves 32 bytes");
        let pk_x = X25519Public::from(pk_x);
        // A low-order X25519 key makes every X25519 secret zero, which age refuses at
        // decryption: a file encrypted to it could never be opened.
        if !StaticSecret::from([1u8; 32])
            .diffie_hellman(&pk_x)
            .was_contributory()
        {
            return Err(XWingError::BadEncapsulationKey);
        }
        let ek_m = MlKemEk::from_bytes(
            pk_m.try_into()
                .map_err(|_| XWingError::BadEncapsulationKey)?,
        );
        Ok(EncapsulationKey { bytes, ek_m, pk_x })
    }

    /// The 1216 encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8; PUBLIC_KEY_BYTES] {
        &self.bytes
    }
}

impl Ciphertext {
    /// A ciphertext from its 1120 bytes (X-Wing §5.1); `None` for another length.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Ciphertext> {
        bytes.try_into().ok().map(|b| Ciphertext(Box::new(b)))
    }

    /// The 1120 encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8; CIPHERTEXT_BYTES] {
        &self.0
    }
}

/// `Combiner(ss_M, ss_X, ct_X, pk_X)` (X-Wing §5.3):
/// SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel).
fn combiner(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut hash = Sha3_256::new();
    Digest::update(&mut hash, ss_m);
    Digest::update(&mut hash, ss_x);
    Digest::update(&mut hash, ct_x);
    Digest::update(&mut hash, pk_x);
    Digest::update(&mut hash, LABEL);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&hash.finalize());
    out
}

/// `EncapsulateDerand(pk, eseed)` (X-Wing §5.4.1): `eseed[0..32]` is the ML-KEM
/// message, `eseed[32..64]` the ephemeral X25519 secret.
pub(crate) fn encapsulate_derand(
    pk: &EncapsulationKey,
    eseed: &[u8; 64],
) -> Result<(Zeroizing<[u8; 32]>, Ciphertext), XWingError> {
    let mut m = B32::default();
    m.copy_from_slice(&eseed[..32]);
    let mut ek = Zeroizing::new([0u8; 32]);
    ek.copy_from_slice(&eseed[32..]);
    let ek_x = StaticSecret::from(*ek);
    let ct_x = X25519Public::from(&ek_x);
    let ss_x = ek_x.diffie_hellman(&pk.pk_x);
    let (ct_m, mut ss_m) = pk
        .ek_m
        .encapsulate_deterministic(&m)
        .expect("ML-KEM encapsulation cannot fail");
    m.as_mut_slice().zeroize();
    let ss = combiner(&ss_m, ss_x.as_bytes(), ct_x.as_bytes(), pk.pk_x.as_bytes());
    ss_m.as_mut_slice().zeroize();
    if !ss_x.was_contributory() {
        return Err(XWingError::ZeroSharedSecret);
    }
    let mut ct = Box::new([0u8; CIPHERTEXT_BYTES]);
    ct[..ML_KEM_CT_BYTES].copy_from_slice(&ct_m);
    ct[ML_KEM_CT_BYTES..].copy_from_slice(ct_x.as_bytes());
    Ok((ss, Ciphertext(ct)))
}

// --- HPKE glue (X-Wing §5.6 "Use in HPKE", RFC 9180 §4) ---------------------------

/// The KEM type handed to the `hpke` crate.
pub(crate) struct XWing;

impl PartialEq for DecapsulationKey {
    fn eq(&self, other: &Self) -> bool {
        self.seed.ct_eq(&*other.seed).into()
    }
}
impl Eq for DecapsulationKey {}

impl PartialEq for EncapsulationKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for EncapsulationKey {}

impl std::fmt::Debug for EncapsulationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "XWingEncapsulationKey({:02x?}…)", &self.bytes[..4])
    }
}

// SerializePrivateKey/DeserializePrivateKey are the identity on the 32-byte seed, and
// SerializePublicKey the identity on the 1216 bytes (X-Wing §5.6).
impl Serializable for DecapsulationKey {
    type OutputSize = U32;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.seed[..]);
    }
}

impl Deserializable for DecapsulationKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        let seed: Zeroizing<[u8; SEED_BYTES]> = Zeroizing::new(
            encoded
                .try_into()
                .map_err(|_| HpkeError::IncorrectInputLength(SEED_BYTES, encoded.len()))?,
        );
        Ok(DecapsulationKey::from_seed(&seed))
    }
}

impl Serializable for EncapsulationKey {
    type OutputSize = Sum<EkSize, U32>;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[..]);
    }
}

impl Deserializable for EncapsulationKey {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        if encoded.len() != PUBLIC_KEY_BYTES {
            return Err(HpkeError::IncorrectInputLength(
                PUBLIC_KEY_BYTES,
                encoded.len(),
            ));
        }
        EncapsulationKey::from_bytes(encoded).map_err(|_| HpkeError::ValidationError)
    }
}

impl Serializable for Ciphertext {
    type OutputSize = Sum<CtSize, U32>;
    fn write_exact(&self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[..]);
    }
}

impl Deserializable for Ciphertext {
    fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
        Ciphertext::from_bytes(encoded).ok_or(HpkeError::IncorrectInputLength(
            CIPHERTEXT_BYTES,
            encoded.len(),
        ))
    }
}

impl hpke::Kem for XWing {
    type PublicKey = EncapsulationKey;
    type PrivateKey = DecapsulationKey;
    type EncappedKey = Ciphertext;
    type NSecret = U32;
    const KEM_ID: u16 = KEM_ID;

    fn sk_to_pk(sk: &DecapsulationKey) -> EncapsulationKey {
        sk.public.clone()
    }

    /// `DeriveKeyPair(ikm)` (X-Wing §5.6): the seed is SHAKE256(ikm, 32 bytes). age
    /// never derives keys through HPKE (identities are random seeds); this is here
    /// because the trait requires it.
    fn derive_keypair(ikm: &[u8]) -> (DecapsulationKey, EncapsulationKey) {
        let mut seed = Zeroizing::new([0u8; SEED_BYTES]);
        Shake256::default()
            .chain(ikm)
            .finalize_xof()
            .read(&mut seed[..]);
        let sk = DecapsulationKey::from_seed(&seed);
        let pk = sk.public.clone();
        (sk, pk)
    }

    fn decap(
        sk_recip: &DecapsulationKey,
        pk_sender_id: Option<&EncapsulationKey>,
        encapped_key: &Ciphertext,
    ) -> Result<hpke::kem::SharedSecret<Self>, HpkeError> {
        // X-Wing is not an authenticated KEM (X-Wing §5.6): Base mode only.
        if pk_sender_id.is_some() {
            return Err(HpkeError::DecapError);
        }
        let ss = sk_recip
            .decapsulate(encapped_key)
            .map_err(|_| HpkeError::DecapError)?;
        Ok(hpke::kem::SharedSecret(GenericArray::clone_from_slice(
            &ss[..],
        )))
    }

    fn encap<R: rand_core::CryptoRng + rand_core::RngCore>(
        pk_recip: &EncapsulationKey,
        sender_id_keypair: Option<(&DecapsulationKey, &EncapsulationKey)>,
        csprng: &mut R,
    ) -> Result<(hpke::kem::SharedSecret<Self>, Ciphertext), HpkeError> {
        if sender_id_keypair.is_some() {
            return Err(HpkeError::EncapError);
        }
        // `Encapsulate(pk)` is `EncapsulateDerand(pk, random(64))` (X-Wing §5.4.1).
        let mut eseed = Zeroizing::new([0u8; 64]);
        csprng.fill_bytes(&mut eseed[..]);
        let (ss, ct) = encapsulate_derand(pk_recip, &eseed).map_err(|_| HpkeError::EncapError)?;
        Ok((
            hpke::kem::SharedSecret(GenericArray::clone_from_slice(&ss[..])),
            ct,
        ))
    }
}

// The sizes above, as the type-level lengths `hpke` works with, agree.
const _: () = assert!(<Sum<EkSize, U32> as Unsigned>::USIZE == PUBLIC_KEY_BYTES);
const _: () = assert!(<Sum<CtSize, U32> as Unsigned>::USIZE == CIPHERTEXT_BYTES);
