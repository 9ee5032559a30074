//! Signing and verifying tokens.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use super::role::Role;

/// Clock skew allowed between a token's issuer and the hub when checking
/// `exp` and `nbf`, in seconds.
pub const CLOCK_LEEWAY_SECS: u64 = 5;

/// The claims of a Switchyard token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// The claims as they arrive, before the role is checked: an unknown role is
/// an authentication failure (401) with a message, not a decode panic.
#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: String,
    role: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
}

/// Why a token was not accepted. Every variant is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("malformed Authorization header: expected `Bearer <token>`")]
    MalformedHeader,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
    #[error("token signature is not valid for this hub")]
    BadSignature,
    #[error("token algorithm {0} is not accepted by this hub")]
    BadAlgorithm(String),
    #[error("{0}")]
    UnknownRole(String),
}

/// The keys this hub signs with and accepts.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    /// Each accepted algorithm with its key.
    decoding: Vec<(Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.decoding.iter().map(|(a, _)| a).collect();
        f.debug_struct("JwtKeys")
            .field("accepts", &algs)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// HS256 with `secret`, plus an optional public key for RS256/EdDSA.
    pub fn new(secret: &[u8], public_key: Option<(Algorithm, DecodingKey)>) -> Self {
        let mut decoding = vec![(Algorithm::HS256, DecodingKey::from_secret(secret))];
        decoding.extend(public_key);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding,
        }
    }

    /// Reads a PEM public key for `algorithm` (RS256 or EdDSA).
    pub fn read_public_key(pem: &[u8], algorithm: Algorithm) -> Result<DecodingKey, String> {
        match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem).map_err(|e| e.to_string()),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).map_err(|e| e.to_string()),
            other => Err(format!(
                "{other:?} public keys are not supported; use RS256 or EdDSA"
            )),
        }
    }

    /// Signs an HS256 token for `sub` with `role`, valid for `ttl`.
    pub fn issue(
        &self,
        sub: &str,
        role: Role,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // Say which part of a garbled token is wrong, rather than the JSON
        // or base64 parser's view of it.
        if let Some(problem) = shape_problem(token) {
            return Err(AuthError::Malformed(problem));
        }
        // Name a refused algorithm (`none`, or one not configured) plainly,
        // before the library's header parser reports it as a JSON error.
        if let Some(alg) = header_alg(token)
            && !self.decoding.iter().any(|(a, _)| format!("{a:?}") == alg)
        {
            return Err(AuthError::BadAlgorithm(alg));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                AuthError::BadAlgorithm("in the token header".into())
            }
            _ => AuthError::Malformed(e.to_string()),
        })?;
        let (alg, key) = self
            .decoding
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or_else(|| AuthError::BadAlgorithm(format!("{:?}", header.alg)))?;
        let mut validation = Validation::new(*alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `nbf`, when present, is honoured like `exp`. Both allow
        // CLOCK_LEEWAY_SECS of clock skew between issuer and hub.
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS;
        let data = decode::<RawClaims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidSignature => AuthError::BadSignature,
                K::InvalidAlgorithm => AuthError::BadAlgorithm(format!("{:?}", header.alg)),
                K::MissingRequiredClaim(c) => {
                    AuthError::Malformed(format!("missing required claim `{c}`"))
                }
                _ => AuthError::Malformed(e.to_string()),
            }
        })?;
        let raw = data.claims;
        let role = raw.role.parse::<Role>().map_err(AuthError::UnknownRole)?;
        if raw.sub.is_empty() {
            return Err(AuthError::Malformed("claim `sub` is empty".into()));
        }
        Ok(Claims {
            sub: raw.sub,
            role,
            exp: raw.exp,
            iat: raw.iat,
            jti: raw.jti,
        })
    }
}

/// What is wrong with the shape of `token` (three base64url parts, the
/// first two JSON objects), if anything; the signature is checked later.
fn shape_problem(token: &str) -> Option<String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    const HINT: &str =
        "pass the whole token `switchyard token issue` printed, without quotes or `Bearer`";
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Some(format!(
            "a JWT has three parts separated by dots (header.payload.signature); this one has {}: {HINT}",
            parts.len()
        ));
    }
    for (name, part) in [
        ("header (part 1)", parts[0]),
        ("payload (part 2)", parts[1]),
    ] {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')) else {
            return Some(format!("its {name} is not base64url: {HINT}"));
        };
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Some(format!("its {name} is not a JSON object: {HINT}")),
        }
    }
    if URL_SAFE_NO_PAD
        .decode(parts[2].trim_end_matches('='))
        .is_err()
    {
        return Some(format!("its signature (part 3) is not base64url: {HINT}"));
    }
    None
}

/// The `alg` of a token's header, read without trusting anything else in it.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", None)
    }

    #[test]
    fn issue_and_verify() {
        let k = keys();
        let t = k
            .issue("alice", Role::Operator, Duration::from_secs(60))
            .unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.role), ("alice", Role::Operator));
    }

    #[test]
    fn rejects_other_secret_and_alg_none() {
        let other = JwtKeys::new(b"ffffffffffffffffffffffffffffffff", None);
        let t = other
            .issue("eve", Role::Admin, Duration::from_secs(60))
            .unwrap();
        assert_eq!(keys().verify(&t), Err(AuthError::BadSignature));

        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"sub":"eve","role":"admin","exp":99999999999}"#);
        let none = format!("{header}.{body}.");
        assert!(
            matches!(keys().verify(&none), Err(AuthError::BadAlgorithm(_))),
            "{:?}",
            keys().verify(&none)
        );
    }

    #[test]
    fn rejects_expired_and_unknown_role() {
        let k = keys();
        let expired = encode(
            &Header::default(),
            &serde_json::json!({"sub": "a", "role": "admin", "exp": 1000}),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(k.verify(&expired), Err(AuthError::Expired));
        let root = encode(
            &Header::default(),
            &serde_json::json!({"sub": "a", "role": "root", "exp": 99999999999u64}),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(matches!(k.verify(&root), Err(AuthError::UnknownRole(_))));
        assert!(matches!(k.verify("garbage"), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn a_garbled_token_names_the_part_that_is_wrong() {
        let k = keys();
        let good = k.issue("a", Role::Admin, Duration::from_secs(60)).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let cases = [
            ("garbage".to_owned(), "this one has 1"),
            (format!("{}.{}", parts[0], parts[1]), "this one has 2"),
            (
                format!("%%%.{}.{}", parts[1], parts[2]),
                "header (part 1) is not base64url",
            ),
            (
                format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(b"nope"),
                    parts[1],
                    parts[2]
                ),
                "header (part 1) is not a JSON object",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    URL_SAFE_NO_PAD.encode(b"[1]"),
                    parts[2]
                ),
                "payload (part 2) is not a JSON object",
            ),
            (
                format!("{}.{}.%%", parts[0], parts[1]),
                "signature (part 3) is not base64url",
            ),
        ];
        for (token, says) in cases {
            match k.verify(&token) {
                Err(AuthError::Malformed(m)) => {
                    assert!(m.contains(says), "{token}: {m}");
                    assert!(m.contains("switchyard token issue"), "{m}");
                }
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn honours_nbf_with_the_documented_leeway() {
        let k = keys();
        let now = jsonwebtoken::get_current_timestamp();
        let signed = |nbf: u64| {
            encode(
                &Header::default(),
                &serde_json::json!({"sub": "a", "role": "admin", "exp": now + 7200, "nbf": nbf}),
                &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            )
            .unwrap()
        };
        assert_eq!(k.verify(&signed(now + 3600)), Err(AuthError::NotYetValid));
        assert_eq!(
            k.verify(&signed(now + CLOCK_LEEWAY_SECS + 60)),
            Err(AuthError::NotYetValid)
        );
        assert!(k.verify(&signed(now + CLOCK_LEEWAY_SECS - 2)).is_ok());
        assert!(k.verify(&signed(now - 10)).is_ok());
    }
}
