//! Base64 and hex as the formats require them.

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Standard alphabet, padding optional on input.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// URL-safe alphabet, padding optional on input.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes with the standard alphabet and padding (what annexa emits).
pub fn b64(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard or URL-safe base64, padded or not: DSSE verifiers must
/// accept either alphabet.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD_LENIENT
        .decode(text)
        .ok()
        .or_else(|| URL_SAFE_LENIENT.decode(text).ok())
}

/// Decodes standard base64 with canonical padding only (signed notes and
/// checkpoints: one encoding per value).
pub fn b64_decode_strict(text: &str) -> Option<Vec<u8>> {
    general_purpose::STANDARD.decode(text).ok()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    annexa_checks::host::hex(bytes)
}

/// Whether `text` is `len` lower-case hex digits (the one spelling of a
/// digest or key id annexa writes and accepts).
pub fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses lower- or upper-case hex.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// 16 bytes as a UUID with the version 4 and RFC 9562 variant bits set
/// (random bytes give a random UUID; hashed bytes a name-derived one).
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_and_optional_padding() {
        assert_eq!(
            b64_decode("-_-_Pj8=").unwrap(),
            b64_decode("+/+/Pj8=").unwrap()
        );
        assert_eq!(b64_decode("aGk").unwrap(), b"hi");
        assert!(b64_decode("not base64!").is_none());
        assert_eq!(hex_decode("00ffA0").unwrap(), [0, 255, 160]);
        assert!(hex_decode("abc").is_none() && hex_decode("zz").is_none());
    }
}
