//! Encryption at rest: what people wrote is stored sealed (AES-256-GCM) under the room's data
//! keys, each value with a fresh nonce and the id of the key that sealed it, and with the room
//! and the value's place (a message's seq and field) bound in as associated data, so a sealed
//! value moved to another room, message or field does not open.
//!
//! The keys live in a key file (`real-server keygen`, `--data-key-file`), never in the store:
//! the store keeps only a check value per key (an HMAC of a fixed text), so a server given the
//! wrong key refuses to start before it reads or writes anything
//! ([`DataKeys::check_against`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What every sealed value starts with: a control character no stored plain text begins with
/// in practice, then the format's version. A value without it is plain (written before the
/// store was sealed, or the fixed text of a deleted message).
const SEALED_PREFIX: &str = "\u{1}cahat1:";
/// The text whose HMAC under a key is that key's check value.
const CHECK_TEXT: &[u8] = b"cahat data key check v1";
const NONCE_BYTES: usize = 12;

/// A key's id and its check value, as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    pub id: String,
    pub check: String,
}

/// Why a sealed value did not open, or a key file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed with key {0}, which the key file does not hold")]
    UnknownKey(String),
    #[error("a sealed value that does not open: not sealed for this room and place, or altered")]
    DoesNotOpen,
    #[error("a sealed value that is not well formed")]
    Malformed,
}

/// The room's data keys: every key that may have sealed something, the one that seals now,
/// and the key of the search index (the blind tokens of [`DataKeys::tokens`]).
#[derive(Clone)]
pub struct DataKeys {
    sealing: String,
    keys: BTreeMap<String, [u8; 32]>,
    index: [u8; 32],
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("DataKeys")
            .field("sealing", &self.sealing)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The key file as written: `{"sealing": ID, "keys": {ID: base64 of 32 bytes, ...},
/// "index": base64 of 32 bytes}`.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    sealing: String,
    keys: BTreeMap<String, String>,
    index: String,
}

/// The id under which the store keeps the index key's check value.
pub const INDEX_KEY_ID: &str = "index";
/// Word prefixes shorter than this are not indexed (a one-letter query word is checked on the
/// candidates the others find, or the search scans).
pub const MIN_INDEXED_PREFIX: usize = 2;
/// Word prefixes longer than this are not indexed: a longer query word is looked up by its
/// first this many characters, and the rule checks the rest.
pub const MAX_INDEXED_PREFIX: usize = 10;
/// Hex digits of a token (40 bits): a collision only proposes a candidate the rule refuses.
const TOKEN_HEX: usize = 10;

impl DataKeys {
    /// One new random key, which seals.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; 4];
        let mut key = [0u8; 32];
        let mut index = [0u8; 32];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut key)?;
        getrandom::fill(&mut index)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            sealing: id.clone(),
            keys: BTreeMap::from([(id, key)]),
            index,
        })
    }

    /// Reads a key file, saying what is wrong with it if it cannot be used.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the data key file {}: {e}", path.display())
        })?;
        Self::parse(&text)
            .map_err(|why| anyhow::anyhow!("the data key file {} {why}", path.display()))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|e| format!("is not a key file written by `real-server keygen`: {e}"))?;
        let key_of = |id: &str, key: &str| -> Result<[u8; 32], String> {
            let bytes = BASE64
                .decode(key.trim())
                .map_err(|_| format!("holds key {id}, which is not base64"))?;
            bytes
                .try_into()
                .map_err(|_| format!("holds key {id}, which is not 32 bytes long"))
        };
        let mut keys = BTreeMap::new();
        for (id, key) in &file.keys {
            if id == INDEX_KEY_ID {
                return Err(format!(
                    "names a data key {INDEX_KEY_ID}, the index key's name"
                ));
            }
            keys.insert(id.clone(), key_of(id, key)?);
        }
        let index = key_of(INDEX_KEY_ID, &file.index)?;
        if !keys.contains_key(&file.sealing) {
            return Err(format!(
                "names {} as its sealing key but does not hold it",
                file.sealing
            ));
        }
        Ok(Self {
            sealing: file.sealing,
            keys,
            index,
        })
    }

    /// Writes a new key file at `path`, readable by its owner only (mode 0600); never
    /// overwrites one (`AlreadyExists`).
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        let file = KeyFile {
            sealing: self.sealing.clone(),
            keys: self
                .keys
                .iter()
                .map(|(id, key)| (id.clone(), BASE64.encode(key)))
                .collect(),
            index: BASE64.encode(self.index),
        };
        let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        // Written whole beside it, then linked into place, which fails if a file is there: a
        // node starting at the same moment never reads half a key file, nor replaces one.
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let partial = path.with_extension(format!("new-{suffix}"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&partial).and_then(|mut out| {
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
            out.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&partial, path));
        let _ = std::fs::remove_file(&partial);
        linked
    }

    /// The id of the key that seals.
    pub fn sealing_id(&self) -> &str {
        &self.sealing
    }

    /// The ids of the data keys held, the sealing one among them.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// These keys and a new random one, which seals from now on (a rotation).
    pub fn rotated(&self) -> Result<Self, getrandom::Error> {
        let fresh = Self::generate()?;
        let mut keys = self.clone();
        for (id, key) in fresh.keys {
            keys.keys.insert(id.clone(), key);
            keys.sealing = id;
        }
        Ok(keys)
    }

    /// These keys without `id` (retired: nothing it sealed is left). The sealing key stays.
    pub fn without(&self, id: &str) -> Self {
        let mut keys = self.clone();
        if id != keys.sealing {
            keys.keys.remove(id);
        }
        keys
    }

    /// Writes the key file at `path` in place of the one there (a rotation or a retirement):
    /// written whole beside it, then renamed over it, so a crash leaves the old file or the
    /// new one.
    pub fn replace_file(&self, path: &Path) -> std::io::Result<()> {
        let fresh = path.with_extension("replacing");
        let _ = std::fs::remove_file(&fresh);
        self.write_new(&fresh)?;
        std::fs::rename(&fresh, path)
    }

    /// The check value of each key, the index key's too ([`INDEX_KEY_ID`]), as the store
    /// keeps them.
    pub fn checks(&self) -> Vec<KeyCheck> {
        self.keys
            .iter()
            .map(|(id, key)| KeyCheck {
                id: id.clone(),
                check: check_value(key),
            })
            .chain(std::iter::once(KeyCheck {
                id: INDEX_KEY_ID.to_owned(),
                check: check_value(&self.index),
            }))
            .collect()
    }

    /// The blind tokens of `text` in `room`: for each of its words (as search sees them:
    /// letters and digits, in lower case), a keyed hash of each of its prefixes of
    /// [`MIN_INDEXED_PREFIX`] to [`MAX_INDEXED_PREFIX`] characters, each once, in hex.
    pub fn tokens(&self, room: &str, text: &str) -> Vec<String> {
        let mut tokens = std::collections::BTreeSet::new();
        for range in protocol::search::word_ranges(text) {
            let word = text[range].to_lowercase();
            let ends: Vec<usize> = word
                .char_indices()
                .map(|(at, c)| at + c.len_utf8())
                .take(MAX_INDEXED_PREFIX)
                .collect();
            for end in ends.iter().skip(MIN_INDEXED_PREFIX - 1) {
                tokens.insert(self.token(room, &word[..*end]));
            }
        }
        tokens.into_iter().collect()
    }

    /// The token a query word is looked up by (its first [`MAX_INDEXED_PREFIX`] characters),
    /// or none for a word shorter than [`MIN_INDEXED_PREFIX`]. `word` is in lower case.
    pub fn query_token(&self, room: &str, word: &str) -> Option<String> {
        let chars = word.chars().count();
        if chars < MIN_INDEXED_PREFIX {
            return None;
        }
        let end = word
            .char_indices()
            .nth(MAX_INDEXED_PREFIX)
            .map_or(word.len(), |(at, _)| at);
        Some(self.token(room, &word[..end]))
    }

    fn token(&self, room: &str, prefix: &str) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.index) else {
            unreachable!("HMAC takes a key of any length");
        };
        mac.update(room.as_bytes());
        mac.update(&[0]);
        mac.update(prefix.as_bytes());
        mac.finalize().into_bytes()[..TOKEN_HEX / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether these keys can read what the store says was sealed (`recorded`): every key it
    /// names is here, with the same check value. Says which key is missing or wrong.
    pub fn check_against(&self, recorded: &[KeyCheck]) -> Result<(), String> {
        for KeyCheck { id, check } in recorded {
            if id == INDEX_KEY_ID {
                if check_value(&self.index) != *check {
                    return Err(
                        "the index key of this key file is not the one the room's search index was made with (its check value differs)"
                            .to_owned(),
                    );
                }
                continue;
            }
            match self.keys.get(id) {
                None => {
                    return Err(format!(
                        "the room's stored text was sealed with key {id}, which this key file does not hold"
                    ));
                }
                Some(key) if check_value(key) != *check => {
                    return Err(format!(
                        "key {id} of this key file is not the key {id} the room's stored text was sealed with (its check value differs)"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `text` sealed for `room` at `place`, under the sealing key.
    pub fn seal(&self, room: &str, place: &str, text: &str) -> String {
        let Some(key) = self.keys.get(&self.sealing) else {
            // `parse` and `generate` make sure the sealing key is held.
            unreachable!("the sealing key is always held");
        };
        let mut nonce = [0u8; NONCE_BYTES];
        if getrandom::fill(&mut nonce).is_err() {
            // Without OS randomness nothing can be sealed safely; a repeated nonce would be
            // worse than stopping.
            panic!("no OS randomness for a nonce");
        }
        let cipher = Aes256Gcm::new(key.into());
        let aad = associated(room, place);
        let Ok(sealed) = cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: text.as_bytes(),
                aad: aad.as_bytes(),
            },
        ) else {
            unreachable!("AES-GCM seals any text shorter than 64 GiB");
        };
        let mut body = Vec::with_capacity(NONCE_BYTES + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", self.sealing, BASE64.encode(body))
    }

    /// The text of `stored`, sealed for `room` at `place`; a plain value comes back as it is.
    pub fn open(&self, room: &str, place: &str, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let body = BASE64.decode(body).map_err(|_| SealError::Malformed)?;
        if body.len() < NONCE_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = body.split_at(NONCE_BYTES);
        let aad = associated(room, place);
        let text = Aes256Gcm::new(key.into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::DoesNotOpen)?;
        String::from_utf8(text).map_err(|_| SealError::Malformed)
    }
}

/// Whether `stored` is a sealed value (any key).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The id of the key that sealed `stored`, if it is sealed.
pub fn sealed_with(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(SEALED_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .map(|(id, _)| id)
}

/// The associated data of a value: the room and the place, which a sealed value is bound to.
fn associated(room: &str, place: &str) -> String {
    format!("cahat\u{0}{room}\u{0}{place}")
}

/// A key's check value: the first 16 bytes of HMAC-SHA256(key, [`CHECK_TEXT`]), in hex.
fn check_value(key: &[u8; 32]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes a key of any length");
    };
    mac.update(CHECK_TEXT);
    mac.finalize().into_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_text_opens_only_in_its_room_and_place_and_holds_no_plain_text() {
        let keys = DataKeys::generate().unwrap();
        let sealed = keys.seal("general", "message 7 raw", "the Zanzibar plan");
        assert!(is_sealed(&sealed));
        assert!(!sealed.to_lowercase().contains("zanzibar"));
        assert_eq!(
            keys.open("general", "message 7 raw", &sealed).unwrap(),
            "the Zanzibar plan"
        );
        // Each sealing has its own nonce.
        assert_ne!(
            sealed,
            keys.seal("general", "message 7 raw", "the Zanzibar plan")
        );
        for (room, place) in [
            ("other", "message 7 raw"),
            ("general", "message 8 raw"),
            ("general", "message 7 html"),
        ] {
            assert!(matches!(
                keys.open(room, place, &sealed),
                Err(SealError::DoesNotOpen)
            ));
        }
        // Plain text (written before sealing, or a deleted message's fixed text) stays as is.
        assert_eq!(keys.open("general", "x", "plain").unwrap(), "plain");
        let other = DataKeys::generate().unwrap();
        assert!(matches!(
            other.open("general", "message 7 raw", &sealed),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_query_words_token_is_among_the_tokens_of_every_text_it_starts_a_word_of() {
        let keys = DataKeys::generate().unwrap();
        let tokens = keys.tokens("general", "Hello, Wörld 42! *Internationalisation*");
        let has = |word: &str| {
            let token = keys.query_token("general", word).expect("a token");
            tokens.contains(&token)
        };
        for word in [
            "he",
            "hel",
            "hello",
            "wö",
            "wörld",
            "42",
            "internationalization",
        ] {
            assert!(has(word), "{word}");
        }
        // Not the start of a word, not a word, another room: no.
        for word in ["el", "ello", "hellos", "orld", "43"] {
            assert!(!has(word), "{word}");
        }
        assert!(
            !tokens.contains(&keys.query_token("other", "hello").unwrap()),
            "a room's tokens are its own"
        );
        // Too short to be indexed: the rule checks it on what the others find.
        assert_eq!(keys.query_token("general", "h"), None);
        // Another key's tokens say nothing of these.
        let other = DataKeys::generate().unwrap();
        assert!(!tokens.contains(&other.query_token("general", "hello").unwrap()));
        // No token is a word of the text.
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == TOKEN_HEX && !t.contains("hel"))
        );
    }

    #[test]
    fn a_key_file_round_trips_and_a_wrong_key_is_told_apart_by_its_check_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cahat.key");
        let keys = DataKeys::generate().unwrap();
        keys.write_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
        }
        assert_eq!(
            keys.write_new(&path).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists,
            "a key file is never overwritten"
        );
        let loaded = DataKeys::load(&path).unwrap();
        assert_eq!(loaded.checks(), keys.checks());
        let sealed = keys.seal("r", "p", "text");
        assert_eq!(loaded.open("r", "p", &sealed).unwrap(), "text");
        assert!(loaded.check_against(&keys.checks()).is_ok());

        // Another key under the same id: refused by its check value.
        let mut wrong = DataKeys::generate().unwrap();
        let key = wrong.keys.remove(&wrong.sealing).unwrap();
        wrong.sealing = keys.sealing.clone();
        wrong.keys.insert(keys.sealing.clone(), key);
        let why = wrong.check_against(&keys.checks()).unwrap_err();
        assert!(why.contains("check value"), "{why}");
        let why = DataKeys::generate()
            .unwrap()
            .check_against(&keys.checks())
            .unwrap_err();
        assert!(why.contains("does not hold"), "{why}");
        // The same data keys with another index key: refused too.
        let mut other_index = keys.clone();
        other_index.index = [7; 32];
        let why = other_index.check_against(&keys.checks()).unwrap_err();
        assert!(why.contains("index key"), "{why}");

        std::fs::write(&path, "not json").unwrap();
        let why = format!("{:#}", DataKeys::load(&path).unwrap_err());
        assert!(why.contains("is not a key file"), "{why}");
    }
}
