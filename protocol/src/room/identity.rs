//! Identity helpers: ids and tokens from the room's seeded generator, token hashes, name rules.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

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

/// Why a wanted name was refused. The text is what the person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// Nothing visible is left after trimming (empty, white space, zero-width or blank signs).
    #[error("a name needs at least one visible character")]
    Invisible,
    /// More than [`MAX_NAME_CHARS`] characters.
    #[error("a name has at most {MAX_NAME_CHARS} characters")]
    TooLong,
    /// A control character (line break, tab, escape ...).
    #[error("a name cannot contain control characters")]
    Control,
    /// A bidirectional override, embedding or isolate: it makes text read differently from
    /// how it is stored (`abc\u{202e}gnp.exe` shows as `abcexe.png`).
    #[error("a name cannot contain right-to-left or left-to-right overrides")]
    Bidi,
    /// More than [`MAX_COMBINING_MARKS`] combining marks on one character.
    #[error("a name cannot stack more than {MAX_COMBINING_MARKS} accents on one letter")]
    TooManyMarks,
}

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Most combining marks one character of a name may carry (Vietnamese needs two).
pub const MAX_COMBINING_MARKS: usize = 4;

/// Unicode normalisation to NFC, provided by the host as it provides the clock: the
/// unicode-normalization crate natively ([`nfc`], feature `nfc`), the browser's
/// `String.prototype.normalize("NFC")` in the WASM client (its tables would not fit the
/// download budget).
pub type Normalize = fn(&str) -> String;

/// NFC from the unicode-normalization crate.
#[cfg(feature = "nfc")]
pub fn nfc(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    text.nfc().collect()
}

/// A name as it will be stored: Unicode NFC (by `normalize`), trimmed, 1 to
/// [`MAX_NAME_CHARS`] characters, with at least one visible character, no control characters,
/// no bidirectional controls and no pile of combining marks.
pub fn clean_name(wanted: &str, normalize: Normalize) -> Result<String, NameProblem> {
    let name: String = normalize(wanted);
    // Bidirectional controls are refused wherever they are, before trimming could hide them.
    if name.chars().any(is_bidi_control) {
        return Err(NameProblem::Bidi);
    }
    let name = name.trim_matches(|c: char| c.is_whitespace() || is_blank(c));
    if !name
        .chars()
        .any(|c| !c.is_whitespace() && !is_blank(c) && !is_combining(c))
    {
        return Err(NameProblem::Invisible);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameProblem::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameProblem::Control);
    }
    let mut marks = 0;
    for c in name.chars() {
        marks = if is_combining(c) { marks + 1 } else { 0 };
        if marks > MAX_COMBINING_MARKS {
            return Err(NameProblem::TooManyMarks);
        }
    }
    Ok(name.to_owned())
}

/// Characters that show nothing: Unicode's default-ignorable code points (zero-width space
/// and joiners, the byte order mark, variation selectors, fillers such as U+3164) and blank
/// look-alikes (the Braille blank). A name of only these would look empty.
fn is_blank(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Bidirectional embeddings, overrides and isolates, and the marks that steer them.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The combining-mark blocks that stack on any letter (what "Zalgo" text piles up).
fn is_combining(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(clean_name("  Ann  ", nfc).as_deref(), Ok("Ann"));
        assert_eq!(clean_name("Zoë 🦀", nfc).as_deref(), Ok("Zoë 🦀"));
        assert_eq!(clean_name("   ", nfc), Err(NameProblem::Invisible));
        assert_eq!(clean_name("", nfc), Err(NameProblem::Invisible));
        assert_eq!(clean_name("a\u{7}b", nfc), Err(NameProblem::Control));
        assert_eq!(clean_name("line\nbreak", nfc), Err(NameProblem::Control));
        assert_eq!(clean_name(&"x".repeat(32), nfc).map(|n| n.len()), Ok(32));
        assert_eq!(clean_name(&"x".repeat(33), nfc), Err(NameProblem::TooLong));
        assert_eq!(
            clean_name(&"é".repeat(32), nfc).map(|n| n.chars().count()),
            Ok(32)
        );
    }

    #[test]
    fn names_are_nfc_and_visible_without_bidi_tricks() {
        // e + combining acute becomes the one character é, and counts as one.
        assert_eq!(clean_name("Zoe\u{301}", nfc).as_deref(), Ok("Zoé"));
        assert_eq!(
            clean_name(&"e\u{301}".repeat(32), nfc).map(|n| n.chars().count()),
            Ok(32)
        );
        for invisible in [
            "\u{200B}",
            "\u{FEFF}\u{FEFF}",
            "\u{3164}",
            "\u{2800}\u{2800}",
            " \u{200B} \u{200D} ",
            "\u{301}\u{301}",
        ] {
            assert_eq!(
                clean_name(invisible, nfc),
                Err(NameProblem::Invisible),
                "{invisible:?}"
            );
        }
        // Zero-width characters around a visible name are trimmed with the spaces.
        assert_eq!(clean_name("\u{200B}Ann\u{FEFF}", nfc).as_deref(), Ok("Ann"));
        for bidi in ["abc\u{202E}gnp.exe", "\u{2067}x\u{2069}", "a\u{200F}b"] {
            assert_eq!(clean_name(bidi, nfc), Err(NameProblem::Bidi), "{bidi:?}");
        }
        assert_eq!(clean_name("Tiê\u{301}n", nfc).as_deref(), Ok("Tiến"));
        assert_eq!(
            clean_name(&format!("Z{}", "\u{35C}".repeat(5)), nfc),
            Err(NameProblem::TooManyMarks)
        );
        assert_eq!(
            clean_name(&format!("Z{}a", "\u{35C}".repeat(4)), nfc).map(|n| n.chars().count()),
            Ok(6)
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
