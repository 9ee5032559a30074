//! `switchyard token issue`: sign a token with the hub's configured or generated key.

use anyhow::{Context, bail};

use super::TokenIssueArgs;
use crate::auth::secret::SECRET_FILE;
use crate::auth::{JwtKeys, Role};
use crate::config::{self, ConfigOverrides};

pub fn issue(args: TokenIssueArgs) -> anyhow::Result<()> {
    let role: Role = args
        .role
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
    if args.sub.trim().is_empty() {
        bail!("--sub must not be empty: name who the token is for");
    }
    let ttl = humantime::parse_duration(&args.ttl).map_err(|e| {
        anyhow::anyhow!(
            "--ttl `{}` is not a duration ({e}); use e.g. 24h, 30m or 7days",
            args.ttl
        )
    })?;
    if ttl.as_secs() == 0 {
        bail!("--ttl must be at least one second");
    }
    let overrides = ConfigOverrides {
        data_dir: args.config.data_dir.clone(),
        ..Default::default()
    };
    let settings = config::load(args.config.config.as_deref(), &overrides)?;
    let secret = match settings.jwt_secret {
        Some(secret) => secret,
        None => {
            let path = settings.data_dir.join(SECRET_FILE);
            std::fs::read_to_string(&path)
                .with_context(|| format!(
                    "no JWT secret: SWITCHYARD_JWT_SECRET is not set and {} cannot be read; start the hub once with `switchyard serve` (same --data-dir) to generate it",
                    path.display()
                ))?
                .trim()
                .to_owned()
        }
    };
    let keys = JwtKeys::new(secret.as_bytes(), None);
    let token = keys
        .issue(&args.sub, role, ttl)
        .context("signing the token")?;
    if args.json {
        // The token's own expiry, read back from it.
        let claims = keys
            .verify(&token)
            .map_err(|e| anyhow::anyhow!("reading back the token just signed: {e}"))?;
        let expires_at = i64::try_from(claims.exp)
            .ok()
            .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0))
            .context("--ttl is too long: the expiry is past the year 262143")?;
        let out = serde_json::json!({
            "token": token,
            "sub": args.sub,
            "role": role.to_string(),
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        println!("{out}");
    } else {
        println!("{token}");
    }
    Ok(())
}
