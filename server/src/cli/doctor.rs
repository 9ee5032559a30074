//! `switchyard doctor`: checks a setup without starting the hub, the way
//! `serve` would read it (same flags, file and environment): the
//! configuration, the data directory and its free disk, the signing secret,
//! the store (reachable, schema version against this build, and on Postgres
//! its clock against this machine's), whether webhook secrets are sealed,
//! the listen address and, with `--webhooks`, whether each enabled
//! webhook target accepts a connection. It says for
//! each check what is wrong and how to fix it. It changes nothing: no
//! migration runs, no file or secret is created. Exits non-zero when a
//! check fails.

use std::path::Path;

use std::time::Duration;

use super::DoctorArgs;
use crate::config::{self, Settings};
use crate::store::migrate::{self, WebhookTarget};
use crate::webhooks::target::{AddressPolicy, parse_url};

/// One check's verdict.
#[derive(serde::Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    says: String,
}

pub async fn run(doctor: DoctorArgs) -> anyhow::Result<()> {
    let args = doctor.serve;
    let mut checks = Vec::new();
    match config::load(args.config.config.as_deref(), &args.overrides()) {
        Err(e) => checks.push(Check {
            name: "configuration",
            ok: false,
            says: e.to_string(),
        }),
        Ok(settings) => {
            checks.push(Check {
                name: "configuration",
                ok: true,
                says: format!(
                    "valid ({})",
                    match args.config.config.as_deref() {
                        Some(file) => format!("file {}, environment and flags", file.display()),
                        None if Path::new(config::DEFAULT_FILE).is_file() =>
                            format!("./{}, environment and flags", config::DEFAULT_FILE),
                        None => "defaults, environment and flags".to_owned(),
                    }
                ),
            });
            checks.push(data_dir(&settings));
            checks.push(disk(&settings));
            checks.push(secret(&settings));
            let (store, targets) = store(&settings).await;
            checks.extend(store);
            checks.extend(sealed(&settings, &targets));
            checks.push(listen(&settings).await);
            if doctor.webhooks {
                for target in &targets {
                    checks.push(reachable(&settings, target).await);
                }
            }
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if doctor.json {
        let report = serde_json::json!({"ok": failed == 0, "checks": checks});
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &checks {
            println!(
                "{} {:<14} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.says
            );
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed; see above", checks.len());
    }
    if !doctor.json {
        println!("all {} checks passed", checks.len());
    }
    Ok(())
}

fn data_dir(settings: &Settings) -> Check {
    let dir = &settings.data_dir;
    let says = |ok: bool, says: String| Check {
        name: "data directory",
        ok,
        says,
    };
    if !dir.exists() {
        // `serve` creates it: its nearest existing ancestor must be writable.
        let ancestor = dir.ancestors().skip(1).find(|a| a.exists());
        return match ancestor {
            Some(a) if writable(a) => {
                says(true, format!("{} will be created on start", dir.display()))
            }
            Some(a) => says(
                false,
                format!(
                    "{} does not exist and {} is not writable: create it, or set data_dir (SWITCHYARD_DATA_DIR) to a writable folder",
                    dir.display(),
                    a.display()
                ),
            ),
            None => says(false, format!("{} cannot be created", dir.display())),
        };
    }
    if !dir.is_dir() {
        return says(
            false,
            format!(
                "{} is not a folder: set data_dir (SWITCHYARD_DATA_DIR) to a folder",
                dir.display()
            ),
        );
    }
    if writable(dir) {
        says(true, format!("{} is writable", dir.display()))
    } else {
        says(
            false,
            format!(
                "{} is not writable by this user: fix its permissions, or set data_dir (SWITCHYARD_DATA_DIR) elsewhere",
                dir.display()
            ),
        )
    }
}

/// Whether a file can be created in `dir` (tried, then removed).
fn writable(dir: &Path) -> bool {
    tempfile::NamedTempFile::new_in(dir).is_ok()
}

fn secret(settings: &Settings) -> Check {
    let file = settings.data_dir.join(crate::auth::secret::SECRET_FILE);
    let (ok, says) = if settings.jwt_secret.is_some() {
        (true, "set by the configuration (jwt_secret)".to_owned())
    } else if settings.jwt_public_key.is_some() {
        (
            true,
            "tokens are checked with the configured public key".to_owned(),
        )
    } else if file.is_file() {
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => (true, format!("read from {}", file.display())),
            Ok(_) => (
                false,
                format!(
                    "{} is empty: delete it (a new one is generated on start, and old tokens stop working) or set jwt_secret",
                    file.display()
                ),
            ),
            Err(e) => (
                false,
                format!(
                    "{} cannot be read ({e}): fix its permissions",
                    file.display()
                ),
            ),
        }
    } else {
        (
            true,
            format!("none yet: generated into {} on first start", file.display()),
        )
    };
    Check {
        name: "signing secret",
        ok,
        says,
    }
}

/// Clocks further apart than this fail the clock check: leases, accept
/// deadlines and event times mix the hub's clock with the database's.
const MAX_SKEW_MS: i64 = 1_000;

/// Less free space than this in the data directory fails the disk check.
const MIN_FREE_BYTES: u64 = 512 << 20;

/// The store check and, on Postgres, the clock check; and the enabled
/// webhook subscriptions found.
async fn store(settings: &Settings) -> (Vec<Check>, Vec<WebhookTarget>) {
    let shown = crate::config::settings::redact_url(&settings.database_url);
    let check = |ok: bool, says: String| Check {
        name: "store",
        ok,
        says,
    };
    let probe = match migrate::probe(&settings.database_url).await {
        Ok(probe) => probe,
        Err(e) => {
            let says = format!(
                "{shown}: cannot be opened: {} (database_url, DATABASE_URL or --database-url)",
                e.explain_open(&shown)
            );
            return (vec![check(false, says)], Vec::new());
        }
    };
    let mut checks = vec![match &probe.schema {
        None => check(
            true,
            format!("{shown}: a new SQLite database, created on start"),
        ),
        Some(status) if status.applied > status.known => check(
            false,
            format!(
                "{shown}: its schema (version {}) is newer than this build knows ({}): run a newer switchyard",
                status.applied, status.known
            ),
        ),
        Some(status) if status.is_current() => check(
            true,
            format!(
                "{shown}: reachable, schema up to date (version {})",
                status.known
            ),
        ),
        Some(status) => check(
            true,
            format!(
                "{shown}: reachable, schema at version {} of {}: serve applies the rest on start",
                status.applied, status.known
            ),
        ),
    }];
    if let Some(skew) = probe.clock_skew_ms {
        let ok = skew.abs() <= MAX_SKEW_MS;
        checks.push(Check {
            name: "clock",
            ok,
            says: if ok {
                format!("the database's clock is {skew} ms from this machine's")
            } else {
                format!(
                    "the database's clock is {skew} ms from this machine's (more than {MAX_SKEW_MS} ms): sync both with NTP (chrony, systemd-timesyncd)"
                )
            },
        });
    }
    (checks, probe.webhooks)
}

/// Whether the subscriptions' signing secrets are sealed at rest, and can
/// be opened with the configured keys.
fn sealed(settings: &Settings, targets: &[WebhookTarget]) -> Option<Check> {
    if targets.is_empty() {
        return None;
    }
    let plain = targets.iter().filter(|t| !t.sealed).count();
    let n = targets.len();
    let (ok, says) = match (settings.webhooks.sealer.is_on(), plain) {
        (true, 0) => (true, format!("{n} subscriptions, every secret sealed")),
        (true, _) => (
            true,
            format!("{plain} of {n} secrets are stored plain: serve seals them on start"),
        ),
        (false, p) if p == n => (
            true,
            format!(
                "{n} secrets are stored plain: set webhooks.secret_keys (or secret_keys_file) to seal them at rest (docs/webhooks.md)"
            ),
        ),
        (false, _) => (
            false,
            format!(
                "{} of {n} secrets are sealed but webhooks.secret_keys is empty: their deliveries cannot be signed; configure the keys they were sealed with",
                n - plain
            ),
        ),
    };
    Some(Check {
        name: "webhook secrets",
        ok,
        says,
    })
}

/// How long a webhook target has to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `target` resolves to an allowed address that accepts a TCP
/// connection (nothing is sent).
async fn reachable(settings: &Settings, target: &WebhookTarget) -> Check {
    let check = |ok: bool, says: String| Check {
        name: "webhook target",
        ok,
        says: format!("{} ({}): {says}", target.url, target.id),
    };
    let Ok(url) = parse_url(&target.url) else {
        return check(
            false,
            "not a valid URL: update or delete the subscription".into(),
        );
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return check(
            false,
            "has no host: update or delete the subscription".into(),
        );
    };
    let policy = AddressPolicy::new(&settings.webhooks);
    let addrs = match policy.resolve(host, port).await {
        Ok(addrs) => addrs,
        Err(e) => return check(false, format!("{e}")),
    };
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return check(true, format!("{addr} accepts connections")),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    check(
        false,
        format!(
            "cannot connect ({last}): start the receiver, or disable the subscription (PATCH /v1/webhooks/{{id}} with enabled=false)"
        ),
    )
}

/// Free space where the data directory is (or will be).
fn disk(settings: &Settings) -> Check {
    let at = settings
        .data_dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(&settings.data_dir);
    let (ok, says) = match rustix::fs::statvfs(at) {
        Ok(fs) => {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            let mib = free >> 20;
            if free >= MIN_FREE_BYTES {
                (true, format!("{mib} MiB free at {}", at.display()))
            } else {
                (
                    false,
                    format!(
                        "only {mib} MiB free at {} (less than {} MiB): free space, or set data_dir (SWITCHYARD_DATA_DIR) on a larger disk",
                        at.display(),
                        MIN_FREE_BYTES >> 20
                    ),
                )
            }
        }
        Err(e) => (
            false,
            format!("cannot read the free space at {} ({e})", at.display()),
        ),
    };
    Check {
        name: "disk",
        ok,
        says,
    }
}

async fn listen(settings: &Settings) -> Check {
    let (ok, says) = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(_) => (true, format!("{} is free", settings.listen)),
        Err(e) => (
            false,
            format!(
                "cannot listen on {} ({e}): another hub or program holds it; stop it, or set listen (SWITCHYARD_LISTEN, --listen)",
                settings.listen
            ),
        ),
    };
    Check {
        name: "listen address",
        ok,
        says,
    }
}
