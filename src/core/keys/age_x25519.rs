//! One age X25519 identity and the decoding of an `age1…` recipient: what both the
//! age backend (`keys/age.rs`) and the direct opener of sops' small age files
//! (`keys/age_file.rs`) hold, in a module of its own so that neither imports the other
//! for it.

use std::str::FromStr;
use std::sync::OnceLock;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// One age X25519 identity.
pub(super) struct X25519Identity {
    secret: StaticSecret,
    /// Computed on first need only: it costs a scalar multiplication (~40 µs), and the
    /// direct path usually does without it.
    public: OnceLock<PublicKey>,
    /// The same key for the age crate, which handles everything unusual.
    pub(super) for_crate: age::x25519::Identity,
}

impl X25519Identity {
    /// Parses an identity line (it starts with [`IDENTITY_PREFIX`]); `None` if it is not one.
    pub(super) fn parse(line: &str) -> Option<X25519Identity> {
        let for_crate = age::x25519::Identity::from_str(line).ok()?;
        // The crate has validated the Bech32 text; decode it once more for the bytes.
        let mut bytes = Zeroizing::new([0u8; 32]);
        let copied = age_core::primitives::bech32_decode(
            line,
            |_| (),
            |_| Ok(()),
            |_, data| {
                let mut n = 0;
                for (slot, byte) in bytes.iter_mut().zip(data) {
                    *slot = byte;
                    n += 1;
                }
                Ok(n)
            },
        );
        (copied == Ok(32)).then(|| X25519Identity {
            secret: StaticSecret::from(*bytes),
            public: OnceLock::new(),
            for_crate,
        })
    }

    pub(super) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The public key, computing it on first use.
    pub(super) fn public(&self) -> &PublicKey {
        self.public.get_or_init(|| PublicKey::from(&self.secret))
    }

    /// The public key if it has been computed already.
    pub(super) fn cached_public(&self) -> Option<&PublicKey> {
        self.public.get()
    }
}

/// Decodes an `age1…` recipient into its public key; `None` if it is not one.
pub(super) fn decode_recipient(text: &str) -> Option<PublicKey> {
    age_core::primitives::bech32_decode(
        text,
        |_| (),
        |hrp| (hrp.as_str() == "age").then_some(()).ok_or(()),
        |_, data| {
            let bytes: Vec<u8> = data.collect();
            <[u8; 32]>::try_from(bytes.as_slice())
                .map(PublicKey::from)
                .map_err(|_| ())
        },
    )
    .ok()
}
