//! Identity helpers: ids and tokens from the room's seeded generator, token hashes, name rules.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

use super::config::MAX_NAME_CHARS;

/// The room's random source. Seeded by the host: from the OS on a server, from `?seed=` in
/// the mock, from a constant in tests, so the engine itself stays deterministic.
#[derive(Debug)]
pub struct IdSource {
    rng: StdRng,
}

impl IdSource {
    /// A generator for the given 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            rng: StdRng::from_seed(seed),
        }
    }

    /// `bytes` random bytes as lowercase hex.
    pub fn hex(&mut self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        rand::Rng::fill_bytes(&mut self.rng, &mut buf);
        to_hex(&buf)
    }
}

/// SHA-256 of a token, hex: what storage keeps instead of the token.
pub fn hash_token(token: &str) -> String {
    to_hex(&Sha256::digest(token.as_bytes()))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A name as it will be stored: trimmed, 1 to 32 characters, no control characters.
/// `None` when the wanted name breaks a rule.
pub fn clean_name(wanted: &str) -> Option<String> {
    let name = wanted.trim();
    let chars = name.chars().count();
    let ok = (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control);
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(clean_name("  Ann  ").as_deref(), Some("Ann"));
        assert_eq!(clean_name("Zoë 🦀").as_deref(), Some("Zoë 🦀"));
        assert_eq!(clean_name("   "), None);
        assert_eq!(clean_name(""), None);
        assert_eq!(clean_name("a\u{7}b"), None);
        assert_eq!(clean_name("line\nbreak"), None);
        assert_eq!(clean_name(&"x".repeat(32)).map(|n| n.len()), Some(32));
        assert_eq!(clean_name(&"x".repeat(33)), None);
        assert_eq!(
            clean_name(&"é".repeat(32)).map(|n| n.chars().count()),
            Some(32)
        );
    }

    #[test]
    fn ids_are_deterministic_per_seed_and_tokens_hash_stably() {
        let (mut a, mut b) = (IdSource::from_seed([7; 32]), IdSource::from_seed([7; 32]));
        assert_eq!(a.hex(16), b.hex(16));
        assert_ne!(a.hex(16), IdSource::from_seed([8; 32]).hex(16));
        assert_eq!(a.hex(3).len(), 6);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
