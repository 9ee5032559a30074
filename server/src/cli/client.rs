//! The `switchyard` binary as a client of a running hub: where the hub is and
//! which token to use, the HTTP calls, errors as one clear line, and exit
//! codes that mean something (documented in `docs/cli.md`).
//!
//! The hub URL and token come from, in order: `--url`/`--token`, the
//! `SWITCHYARD_URL`/`SWITCHYARD_TOKEN` environment variables, the client
//! config file (`--cli-config FILE`, else `$XDG_CONFIG_HOME/switchyard/cli.toml`,
//! else `~/.config/switchyard/cli.toml`), and finally `http://127.0.0.1:8000`.
//! Hub responses are kept as JSON values: `--json` prints them unchanged and
//! the human output picks the fields it shows, so the client keeps working
//! when the hub adds fields.

pub mod output;
pub mod sse;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use figment::providers::Format;
use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::Value;

/// The hub when nothing says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// Exit codes of the client commands.
pub mod exit {
    /// Done; for `--wait`/`watch`: the job completed.
    pub const OK: u8 = 0;
    /// The hub answered with an error (a 4xx other than 401/403, or a 5xx).
    pub const HUB_ERROR: u8 = 1;
    /// The command line or the client configuration is wrong (also clap's code).
    pub const USAGE: u8 = 2;
    /// The job failed.
    pub const JOB_FAILED: u8 = 3;
    /// The job was cancelled.
    pub const JOB_CANCELLED: u8 = 4;
    /// The hub could not be reached (connection refused, DNS, timeout).
    pub const UNREACHABLE: u8 = 5;
    /// The token is missing, invalid or lacks the role (401/403).
    pub const AUTH: u8 = 6;
}

/// Everything a client command can fail with; `Display` is the one line shown.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "cannot reach the hub at {url}: {reason}; is it running? (set --url or SWITCHYARD_URL)"
    )]
    Unreachable { url: String, reason: String },
    #[error("{message} (HTTP {status} {code})")]
    Hub {
        status: u16,
        code: String,
        message: String,
    },
    #[error("job {job_id} failed: {reason}")]
    JobFailed { job_id: String, reason: String },
    #[error("job {job_id} was cancelled: {reason}")]
    JobCancelled { job_id: String, reason: String },
    #[error("{0}")]
    Io(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::Unreachable { .. } => exit::UNREACHABLE,
            CliError::Hub { status, .. } if *status == 401 || *status == 403 => exit::AUTH,
            CliError::Hub { .. } | CliError::Io(_) => exit::HUB_ERROR,
            CliError::JobFailed { .. } => exit::JOB_FAILED,
            CliError::JobCancelled { .. } => exit::JOB_CANCELLED,
        }
    }
}

/// Where the hub is and how to authenticate; shared by every client command.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// Hub base URL [env: SWITCHYARD_URL] [default: http://127.0.0.1:8000].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token [env: SWITCHYARD_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Client config file (TOML with `url` and `token`) [default: ~/.config/switchyard/cli.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub cli_config: Option<PathBuf>,
    /// Print the hub's JSON instead of the human view.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    url: Option<String>,
    token: Option<String>,
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("switchyard").join("cli.toml"))
}

fn read_config(path: &Path, explicit: bool) -> Result<ConfigFile, CliError> {
    if !path.is_file() {
        return if explicit {
            Err(CliError::Usage(format!(
                "--cli-config {} does not exist; pass an existing TOML file with `url` and `token`",
                path.display()
            )))
        } else {
            Ok(ConfigFile::default())
        };
    }
    figment::Figment::from(figment::providers::Toml::file_exact(path))
        .extract()
        .map_err(|e| {
            CliError::Usage(format!(
                "client config {} is not valid: {e}; it holds `url = \"...\"` and `token = \"...\"`",
                path.display()
            ))
        })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A configured client of one hub.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    token: Option<String>,
    pub json: bool,
}

impl Client {
    /// Resolves URL and token (see the module docs) and builds the client.
    pub fn from_args(args: &ClientArgs) -> Result<Client, CliError> {
        let file = match &args.cli_config {
            Some(path) => read_config(path, true)?,
            None => match default_config_path() {
                Some(path) => read_config(&path, false)?,
                None => ConfigFile::default(),
            },
        };
        let base = args
            .url
            .clone()
            .or_else(|| env("SWITCHYARD_URL"))
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "hub URL `{base}` must start with http:// or https://, e.g. {DEFAULT_URL}"
            )));
        }
        let token = args
            .token
            .clone()
            .or_else(|| env("SWITCHYARD_TOKEN"))
            .or(file.token)
            .map(|t| t.trim().to_owned());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("switchyard-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Io(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token,
            json: args.json,
        })
    }

    /// A request to `path` (starting with `/v1/...`), authenticated.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request with a timeout; hub errors become [`CliError::Hub`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        self.send_streaming(request.timeout(Duration::from_secs(60)))
            .await
    }

    /// Sends without a whole-request timeout (for streams).
    pub async fn send_streaming(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.hub_error(response).await)
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        CliError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    async fn hub_error(&self, response: Response) -> CliError {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = body["error"].as_str().unwrap_or("error").to_owned();
        let mut message = body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.chars().take(200).collect());
        if let Some(details) = body["details"].as_array() {
            let fields: Vec<String> = details
                .iter()
                .map(|d| {
                    format!(
                        "{}: {}",
                        d["field"].as_str().unwrap_or("?"),
                        d["message"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            if !fields.is_empty() {
                message = format!("{message} ({})", fields.join("; "));
            }
        }
        if status == 401 && self.token.is_none() {
            message = format!("{message}; give a token with --token or SWITCHYARD_TOKEN");
        }
        CliError::Hub {
            status,
            code,
            message,
        }
    }

    /// Decodes a JSON response.
    pub async fn json_of(response: Response) -> Result<Value, CliError> {
        response
            .json()
            .await
            .map_err(|e| CliError::Io(format!("the hub sent a response that is not JSON: {e}")))
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        Self::json_of(self.send(self.request(Method::GET, path)).await?).await
    }

    pub async fn get_text(&self, path: &str) -> Result<String, CliError> {
        self.send(self.request(Method::GET, path))
            .await?
            .text()
            .await
            .map_err(|e| CliError::Io(format!("reading the hub's response: {e}")))
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let request = self.request(Method::POST, path);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        Self::json_of(self.send(request).await?).await
    }

    pub async fn delete(&self, path: &str) -> Result<Option<Value>, CliError> {
        let response = self.send(self.request(Method::DELETE, path)).await?;
        let text = response
            .text()
            .await
            .map_err(|e| CliError::Io(format!("reading the hub's response: {e}")))?;
        Ok(serde_json::from_str(&text).ok())
    }

    /// Prints `value` as pretty JSON (for `--json`).
    pub fn print_json(value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }
}

/// Percent-encodes a query value.
pub fn query_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path segment from user input: only a UUID is accepted, so nothing the
/// user types can change the path.
pub fn id_segment(what: &str, raw: &str) -> Result<String, CliError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.to_string())
        .map_err(|_| CliError::Usage(format!("`{raw}` is not a valid {what} id (a UUID)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_error() {
        let hub = |status| CliError::Hub {
            status,
            code: "x".into(),
            message: "m".into(),
        };
        assert_eq!(hub(401).exit_code(), exit::AUTH);
        assert_eq!(hub(403).exit_code(), exit::AUTH);
        assert_eq!(hub(409).exit_code(), exit::HUB_ERROR);
        assert_eq!(CliError::Usage("u".into()).exit_code(), exit::USAGE);
        assert_eq!(
            CliError::JobCancelled {
                job_id: "j".into(),
                reason: "r".into()
            }
            .exit_code(),
            exit::JOB_CANCELLED
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(query_value("running"), "running");
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(id_segment("job", "../admin").is_err());
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(id_segment("job", &id).unwrap(), id);
    }
}
