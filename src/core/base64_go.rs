//! Base64 as sops reads it: Go's `base64.StdEncoding` (the envelope's fields, a KMS
//! entry's `enc`). Its own module so that the cipher and the key types can both use
//! it without importing each other.

/// For each place in a quantum, each character's 6 bits already shifted into place,
/// or the top bit set for characters outside the alphabet: a quantum decodes with
/// four loads and three ORs.
static BASE64_PLACES: [[u32; 256]; 4] = {
    const INVALID: u32 = 1 << 31;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut tables = [[INVALID; 256]; 4];
    let mut i = 0;
    while i < 64 {
        let c = alphabet[i] as usize;
        let v = i as u32;
        tables[0][c] = v << 18;
        tables[1][c] = v << 12;
        tables[2][c] = v << 6;
        tables[3][c] = v;
        i += 1;
    }
    tables
};

/// Standard padded base64 read as Go's `base64.StdEncoding.DecodeString` reads it
/// (sops decodes the envelope fields with it): `\r` and `\n` are skipped, padding is
/// required, nothing may follow it, and non-zero trailing bits are accepted. Written
/// out because the general-purpose decoder's setup dominated on short fields (three
/// per value: 6% of decrypting a 10,000-key file). `None` on invalid input.
pub(crate) fn decode_base64_go(input: &[u8]) -> Option<Vec<u8>> {
    // Line breaks are rare: decode first (they are outside the alphabet, so the strict
    // decoder refuses them), and only then look for them and decode again without.
    decode_base64_strict(input).or_else(|| {
        if !input.contains(&b'\r') && !input.contains(&b'\n') {
            return None;
        }
        let joined: Vec<u8> = input
            .iter()
            .copied()
            .filter(|c| !matches!(c, b'\r' | b'\n'))
            .collect();
        decode_base64_strict(&joined)
    })
}

/// [`decode_base64_go`] for input without line breaks.
fn decode_base64_strict(input: &[u8]) -> Option<Vec<u8>> {
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let Some(full) = (input.len() / 4).checked_sub(1) else {
        return Some(Vec::new());
    };
    // Four characters to 24 bits; `=` and anything outside the alphabet are invalid.
    let quantum = |q: [u8; 4]| -> Option<u32> {
        let [t0, t1, t2, t3] = &BASE64_PLACES;
        let bits = t0[q[0] as usize] | t1[q[1] as usize] | t2[q[2] as usize] | t3[q[3] as usize];
        (bits >> 31 == 0).then_some(bits)
    };
    let mut out = vec![0u8; full * 3 + 3];
    for (q, dst) in input[..full * 4]
        .chunks_exact(4)
        .zip(out.chunks_exact_mut(3))
    {
        let bits = quantum([q[0], q[1], q[2], q[3]])?;
        dst.copy_from_slice(&bits.to_be_bytes()[1..]);
    }
    // The last quantum may end in `==` (one byte) or `=` (two); padding's place is
    // decoded as zero bits and the unused bits are ignored.
    let last = &input[full * 4..];
    let (bytes, bits) = match (last[2], last[3]) {
        (b'=', b'=') => (1, quantum([last[0], last[1], b'A', b'A'])?),
        (b'=', _) => return None,
        (_, b'=') => (2, quantum([last[0], last[1], last[2], b'A'])?),
        _ => (3, quantum([last[0], last[1], last[2], last[3]])?),
    };
    out[full * 3..full * 3 + bytes].copy_from_slice(&bits.to_be_bytes()[1..1 + bytes]);
    out.truncate(full * 3 + bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn base64_is_read_as_go_reads_it() {
        for (text, want) in [
            ("", Some(&b""[..])),
            ("YQ==", Some(b"a")),
            ("YWI=", Some(b"ab")),
            ("YWJj", Some(b"abc")),
            ("YWJjZA==", Some(b"abcd")),
            ("YR==", Some(b"a")), // non-zero trailing bits: accepted, as in Go
            ("YW\r\nJj\n", Some(b"abc")),
            ("YQ", None),
            ("YQ=", None),
            ("Y===", None),
            ("====", None),
            ("YQ==YQ==", None),
            ("YQ===", None),
            ("YW-j", None),
            ("YWJj=", None),
        ] {
            assert_eq!(
                decode_base64_go(text.as_bytes()).as_deref(),
                want,
                "{text:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn base64_decoding_agrees_with_the_base64_crate_on_canonical_input(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            let text = STANDARD.encode(&bytes);
            proptest::prop_assert_eq!(decode_base64_go(text.as_bytes()), Some(bytes));
        }
    }
}
