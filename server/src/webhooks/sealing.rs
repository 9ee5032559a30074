//! Webhook signing secrets encrypted at rest.
//!
//! The hub must be able to read a subscription's secret back (it signs every
//! delivery with it), so it is encrypted, not hashed: XChaCha20-Poly1305
//! under a key from configuration (`webhooks.secret_keys`, or
//! `webhooks.secret_keys_file` with one key per line). The first key seals;
//! every listed key opens, so a key is rotated by putting the new one first
//! and keeping the old one until the hub has re-sealed every secret under
//! the new one (it does so at start and when the keys change, and logs it).
//!
//! A stored value reads `sealed:v1:<key id>:<base64 of nonce and ciphertext>`;
//! the key id (a hash of the key) names the key without revealing it. Values
//! without that prefix are plain (written before keys were configured) and
//! are sealed by the same re-sealing pass. Without keys, secrets are stored
//! plain, as before, and `switchyard doctor` says so.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::model::SigningKeys;
use crate::store::{DynStore, StoreError};

const PREFIX: &str = "sealed:v1:";
/// Binds a ciphertext to its use: a sealed value of another kind never opens as a secret.
const AAD: &[u8] = b"switchyard webhook signing secret";
/// Shortest accepted key, in characters.
pub const MIN_KEY_LEN: usize = 32;

struct SealKey {
    id: String,
    key: Key,
}

/// Seals and opens signing secrets; cheap to clone.
#[derive(Clone, Default)]
pub struct Sealer {
    keys: Arc<Vec<SealKey>>,
}

/// A stored secret that cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "the signing secret is sealed with key {0}, which is not among webhooks.secret_keys; add that key back (after the new one)"
    )]
    UnknownKey(String),
    #[error("the sealed signing secret is damaged (it does not decrypt under key {0})")]
    Damaged(String),
}

impl Sealer {
    /// A sealer for `secrets` (the first seals); none: secrets stay plain.
    pub fn new(secrets: &[String]) -> Sealer {
        let keys = secrets
            .iter()
            .map(|secret| {
                let key = Key::from(<[u8; 32]>::from(Sha256::digest(secret.as_bytes())));
                let id = hex::encode(
                    &Sha256::digest([b"switchyard key id:".as_slice(), &key].concat())[..4],
                );
                SealKey { id, key }
            })
            .collect();
        Sealer {
            keys: Arc::new(keys),
        }
    }

    /// Whether secrets are sealed at all.
    pub fn is_on(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals (for logs), if any.
    pub fn current_key_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    /// `plain`, sealed under the first key (unchanged without keys).
    pub fn seal(&self, plain: &str) -> String {
        let Some(first) = self.keys.first() else {
            return plain.to_owned();
        };
        let cipher = XChaCha20Poly1305::new(&first.key);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: AAD,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", first.id, B64.encode(bytes))
    }

    /// The plain secret of a stored value (plain values pass through).
    pub fn open(&self, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, data) = rest.split_once(':').unwrap_or((rest, ""));
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let damaged = || SealError::Damaged(id.to_owned());
        let bytes = B64.decode(data).map_err(|_| damaged())?;
        if bytes.len() < 24 {
            return Err(damaged());
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| damaged())?;
        let plain = XChaCha20Poly1305::new(&key.key)
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }

    /// Whether `stored` is not sealed under the current key (plain, or an
    /// older key), and keys are configured.
    pub fn needs_reseal(&self, stored: &str) -> bool {
        match self.current_key_id() {
            None => false,
            Some(id) => stored
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split_once(':'))
                .is_none_or(|(key, _)| key != id),
        }
    }
}

/// Seals every subscription's secrets under the current key where they are
/// not yet (plain, or under an older key); returns how many it re-sealed.
/// A secret that cannot be opened is left as it is, and logged.
pub async fn reseal_all(store: &DynStore, sealer: &Sealer) -> Result<usize, StoreError> {
    if !sealer.is_on() {
        return Ok(0);
    }
    let mut resealed = 0;
    for webhook in store.list_webhooks().await? {
        let keys = &webhook.keys;
        let stale = sealer.needs_reseal(&keys.current)
            || keys
                .previous
                .as_deref()
                .is_some_and(|p| sealer.needs_reseal(p));
        if !stale {
            continue;
        }
        let reseal = |stored: &str| sealer.open(stored).map(|plain| sealer.seal(&plain));
        let new = match (
            reseal(&keys.current),
            keys.previous.as_deref().map(reseal).transpose(),
        ) {
            (Ok(current), Ok(previous)) => SigningKeys {
                current,
                previous,
                previous_expires_at: keys.previous_expires_at,
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(webhook_id = %webhook.id, error = %e, "cannot re-seal a webhook secret");
                continue;
            }
        };
        if store.reseal_webhook_secrets(webhook.id, keys, &new).await? {
            resealed += 1;
        }
    }
    Ok(resealed)
}

impl PartialEq for Sealer {
    fn eq(&self, other: &Self) -> bool {
        self.keys
            .iter()
            .map(|k| &k.id)
            .eq(other.keys.iter().map(|k| &k.id))
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> String {
        c.to_string().repeat(MIN_KEY_LEN)
    }

    #[test]
    fn seals_and_opens_and_never_stores_the_plain_secret() {
        let sealer = Sealer::new(&[key('a')]);
        let sealed = sealer.seal("whsec_abc");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("whsec_abc"));
        assert_ne!(sealed, sealer.seal("whsec_abc"), "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed).unwrap(), "whsec_abc");
        assert!(!sealer.needs_reseal(&sealed));
        assert!(sealer.needs_reseal("whsec_plain"));
        assert_eq!(sealer.open("whsec_plain").unwrap(), "whsec_plain");
    }

    #[test]
    fn rotation_opens_old_values_and_reseals_them_under_the_new_key() {
        let old = Sealer::new(&[key('a')]);
        let sealed = old.seal("whsec_abc");
        let rotated = Sealer::new(&[key('b'), key('a')]);
        assert_eq!(rotated.open(&sealed).unwrap(), "whsec_abc");
        assert!(rotated.needs_reseal(&sealed));
        let resealed = rotated.seal(&rotated.open(&sealed).unwrap());
        let dropped = Sealer::new(&[key('b')]);
        assert_eq!(dropped.open(&resealed).unwrap(), "whsec_abc");
        assert!(matches!(
            dropped.open(&sealed),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_damaged_value_is_refused() {
        let sealer = Sealer::new(&[key('a')]);
        let sealed = sealer.seal("whsec_abc");
        // One character of the ciphertext changed (the tag no longer matches).
        let at = sealed.len() - 10;
        let mut damaged = sealed.clone();
        let was = damaged.remove(at);
        damaged.insert(at, if was == 'A' { 'B' } else { 'A' });
        assert!(matches!(sealer.open(&damaged), Err(SealError::Damaged(_))));
        let mut cut = sealed.clone();
        cut.truncate(cut.len() - 30);
        assert!(matches!(sealer.open(&cut), Err(SealError::Damaged(_))));
        assert!(Sealer::default().seal("x") == "x" && !Sealer::default().is_on());
    }
}
