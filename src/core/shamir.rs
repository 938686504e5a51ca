//! Shamir secret sharing over GF(2^8) with the AES polynomial 0x11B (spec §5.4).
//!
//! Guarantees: share `i` is the evaluations at x = i+1 followed by the byte x (33 bytes
//! for a 32-byte key); `combine` takes x from each share's last byte, so files from
//! sops < 3.10 (random x) work. Field arithmetic has no secret-dependent branches or
//! table lookups. Randomness is a parameter.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// What is wrong with a split or combine request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShamirError {
    /// Threshold or part count out of range (§5.4 limits).
    #[error(
        "threshold {threshold} with {parts} parts is invalid: need 2 <= threshold <= parts <= 255"
    )]
    Parameters {
        /// The threshold.
        threshold: usize,
        /// The number of parts.
        parts: usize,
    },
    /// Fewer than two shares.
    #[error("at least 2 shares are needed, got {got}")]
    TooFewShares {
        /// Shares given.
        got: usize,
    },
    /// Shares differ in length or are too short.
    #[error("shares have different or too short lengths")]
    BadLength,
    /// Two shares carry the same x coordinate.
    #[error("two shares have the same x coordinate")]
    DuplicateX,
}

/// Multiplication in GF(2^8) mod x^8+x^4+x^3+x+1, without branches on the operands.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    for _ in 0..8 {
        r ^= a & 0u8.wrapping_sub(b & 1);
        let hi = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1B & hi);
        b >>= 1;
    }
    r
}

/// Inverse as a^254 (0 maps to 0, never used for 0).
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if threshold < 2 || parts < threshold || parts > 255 {
        return Err(ShamirError::Parameters { threshold, parts });
    }
    let mut shares: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|_| Zeroizing::new(Vec::with_capacity(secret.len() + 1)))
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    for &byte in secret {
        coeffs[0] = byte;
        rng.fill_bytes(&mut coeffs[1..]);
        for (i, share) in shares.iter_mut().enumerate() {
            let x = (i + 1) as u8;
            // Horner's rule from the highest coefficient.
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, x) ^ c;
            }
            share.push(y);
        }
    }
    for (i, share) in shares.iter_mut().enumerate() {
        share.push((i + 1) as u8);
    }
    Ok(shares)
}

/// Recombines shares (Lagrange interpolation at 0). More shares than the threshold are
/// fine; fewer give a wrong secret, which nothing here can detect (§5.4).
pub fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::TooFewShares { got: shares.len() });
    }
    let len = shares[0].len();
    if len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::BadLength);
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[len - 1]).collect();
    for (i, a) in xs.iter().enumerate() {
        if xs[i + 1..].contains(a) {
            return Err(ShamirError::DuplicateX);
        }
    }
    // Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
    let basis: Vec<u8> = (0..xs.len())
        .map(|i| {
            let mut num = 1u8;
            let mut den = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    num = mul(num, xj);
                    den = mul(den, xj ^ xs[i]);
                }
            }
            mul(num, inv(den))
        })
        .collect();
    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    for (k, out) in secret.iter_mut().enumerate() {
        for (share, &b) in shares.iter().zip(&basis) {
            *out ^= mul(share[k], b);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{CryptoRng, RngCore};

    /// A deterministic test RNG (xorshift); not for real use.
    struct TestRng(u64);
    impl RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                *b = self.next_u64() as u8;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for TestRng {}

    #[test]
    fn field_inverse_and_aes_vector() {
        // FIPS-197 §4.2: {57} * {83} = {c1}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
        }
    }

    #[test]
    fn two_of_three_recovers_from_any_pair_and_x_comes_from_the_share() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 3, 2, &mut TestRng(0x9E3779B97F4A7C15)).unwrap();
        assert!(shares.iter().all(|s| s.len() == 33));
        assert_eq!(
            shares.iter().map(|s| s[32]).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
            let got = combine(&[&shares[a], &shares[b]]).unwrap();
            assert_eq!(&got[..], &secret[..]);
        }
        let all: Vec<&[u8]> = shares.iter().map(|s| &s[..]).collect();
        assert_eq!(&combine(&all).unwrap()[..], &secret[..]);
    }

    #[test]
    fn random_x_coordinates_from_old_sops_are_honoured() {
        // Build shares at x = 200 and 17 by hand: f(x) = s + c*x per byte.
        let secret = [0xAB, 0x01];
        let c = [0x35, 0xF0];
        let share = |x: u8| {
            let mut v: Vec<u8> = secret.iter().zip(c).map(|(&s, c)| s ^ mul(c, x)).collect();
            v.push(x);
            v
        };
        let (a, b) = (share(200), share(17));
        assert_eq!(&combine(&[&a, &b]).unwrap()[..], &secret);
    }

    proptest::proptest! {
        #[test]
        fn any_threshold_subset_recovers_and_fewer_do_not(
            secret in proptest::collection::vec(proptest::prelude::any::<u8>(), 32),
            parts in 2usize..8,
            t_seed in 0usize..100,
            seed in 1u64..u64::MAX,
            rotate in 0usize..8,
        ) {
            let threshold = 2 + t_seed % (parts - 1);
            let shares = split(&secret, parts, threshold, &mut TestRng(seed)).unwrap();
            let mut order: Vec<usize> = (0..parts).collect();
            order.rotate_left(rotate % parts);
            let pick = |n: usize| -> Vec<&[u8]> { order[..n].iter().map(|&i| &shares[i][..]).collect() };
            proptest::prop_assert_eq!(&combine(&pick(threshold)).unwrap()[..], &secret[..]);
            proptest::prop_assert_eq!(&combine(&pick(parts)).unwrap()[..], &secret[..]);
            if threshold > 2 {
                proptest::prop_assert_ne!(&combine(&pick(threshold - 1)).unwrap()[..], &secret[..]);
            }
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut rng = TestRng(1);
        assert!(split(b"k", 3, 1, &mut rng).is_err());
        assert!(split(b"k", 2, 3, &mut rng).is_err());
        assert!(split(b"k", 256, 2, &mut rng).is_err());
        let s = split(b"k", 2, 2, &mut rng).unwrap();
        assert_eq!(
            combine(&[&s[0]]).unwrap_err(),
            ShamirError::TooFewShares { got: 1 }
        );
        assert_eq!(
            combine(&[&s[0], &s[0]]).unwrap_err(),
            ShamirError::DuplicateX
        );
    }
}
