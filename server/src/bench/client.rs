//! The bench's REST client.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::target::Target;
use crate::auth::Role;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(target: &Target) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: target.base.clone(),
            token: target.token(Role::Operator, "bench")?,
        })
    }

    /// Submits jobs with `POST /v1/jobs/batch`; returns how many were accepted.
    pub async fn submit_batch(&self, jobs: Vec<Value>) -> anyhow::Result<usize> {
        let res = self
            .http
            .post(format!("{}/v1/jobs/batch", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"jobs": jobs}))
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("batch submit failed with {status}: {body}");
        }
        Ok(body["jobs"].as_array().map_or(0, Vec::len))
    }

    /// Submits one job; returns its id.
    pub async fn submit(&self, job: Value) -> anyhow::Result<String> {
        let res = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(&job)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("submit failed with {status}: {body}");
        }
        body["id"]
            .as_str()
            .map(str::to_owned)
            .context("the hub answered without a job id")
    }

    pub async fn job(&self, id: &str) -> anyhow::Result<Value> {
        let res = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(res.json().await?)
    }
}
