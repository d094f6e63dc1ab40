//! Bearer secrets: enrollment tokens and API tokens. Only their SHA-256 is
//! stored, so a copy of the database grants nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of enrollment tokens (so a leaked one is recognisable).
pub const ENROLL_PREFIX: &str = "annexa-enroll-";
/// Prefix of API tokens.
pub const API_PREFIX: &str = "annexa-api-";

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_string())?;
    Ok(bytes)
}

/// A fresh token: the prefix and 256 random bits.
pub fn generate(prefix: &str) -> Result<String, String> {
    Ok(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random::<32>()?)
    ))
}

/// What is stored for a token.
pub fn hash(token: &str) -> String {
    annexa_evidence::sha256_hex(token.trim().as_bytes())
}

/// A random id for an agent.
pub fn agent_id() -> Result<String, String> {
    Ok(format!(
        "ag-{}",
        annexa_evidence::encoding::hex(&random::<12>()?)
    ))
}

/// A random (version 4) UUID, for a report.
pub fn uuid() -> Result<String, String> {
    Ok(annexa_evidence::encoding::uuid_v4(random::<16>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = generate(ENROLL_PREFIX).unwrap();
        let b = generate(ENROLL_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(ENROLL_PREFIX) && a.len() == ENROLL_PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
        assert_ne!(hash(&a), hash(&b));
        assert!(agent_id().unwrap().starts_with("ag-"));
    }
}
