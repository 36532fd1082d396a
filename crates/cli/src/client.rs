//! A small client for rampart's API, used by the CLI commands that talk to a running
//! server.

use std::path::Path;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::cli::ApiArgs;
use crate::exit::{CliError, USAGE};

/// A client builder that trusts the CA in `ca` (PEM, one or more certificates)
/// besides the public CAs, for an https API or service with a private certificate.
pub fn http_client(ca: Option<&Path>) -> Result<reqwest::ClientBuilder, CliError> {
    let builder = reqwest::Client::builder();
    let Some(ca) = ca else {
        return Ok(builder);
    };
    let pem = std::fs::read(ca).map_err(|e| {
        CliError::usage(anyhow!(
            "cannot read --ca {}: {e}; give the PEM file of the CA that signed the server's certificate",
            ca.display()
        ))
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| {
            CliError::usage(anyhow!(
                "--ca {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); give the CA's certificate, not its key",
                ca.display()
            ))
        })?;
    Ok(certificates
        .into_iter()
        .fold(builder, reqwest::ClientBuilder::add_root_certificate))
}

/// Why the API could not be reached, with the causes reqwest keeps underneath (a
/// TLS failure says which), and what to try.
fn unreachable(base: &str, error: &reqwest::Error) -> anyhow::Error {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    let hint = if detail.contains("certificate") || detail.contains("UnknownIssuer") {
        "if the API's certificate comes from a private CA, pass it with --ca FILE (or RAMPART_CA)"
    } else if base.starts_with("http://") && detail.contains("connection closed") {
        "if the API serves TLS, use an https:// --api"
    } else {
        "is `rampart serve` running there? (set --api)"
    };
    anyhow!("cannot reach the rampart API at {base}: {detail}; {hint}")
}

pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// Resolves the token from the flag, `RAMPART_TOKEN`, or the default data dir's
    /// `admin.token`.
    pub fn new(args: &ApiArgs, data_dir_hint: Option<&Path>) -> Result<Self, CliError> {
        let token = match &args.token {
            Some(t) => t.trim().to_string(),
            None => {
                let path = data_dir_hint
                    .unwrap_or(Path::new("rampart-data"))
                    .join("admin.token");
                std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| {
                        CliError::usage(anyhow!(
                            "no API token: pass --token or set RAMPART_TOKEN (could not read {}: {e})",
                            path.display()
                        ))
                    })?
            }
        };
        let http = http_client(args.ca.as_deref())?
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("cannot build HTTP client")?;
        Ok(Self {
            base: args.api.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CliError> {
        let text = self.request_text(method.clone(), path, body).await?;
        serde_json::from_str(&text)
            .with_context(|| format!("unexpected response from {method} {path}: {text}"))
            .map_err(Into::into)
    }

    /// An open streaming response (server-sent events), once its status is a success.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, CliError> {
        let url = format!("{}{}", self.base, path);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(anyhow!("GET {path} failed with {status}: {text}").into());
        }
        Ok(response)
    }

    /// The response body as text, for routes that answer something other than JSON.
    pub async fn request_text(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, CliError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = response.status();
        let text = response.text().await.context("reading the API response")?;
        if !status.is_success() {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
                .unwrap_or(text);
            let error = anyhow!("{method} {path} failed with {status}: {detail}");
            return Err(
                if status == StatusCode::BAD_REQUEST
                    || status == StatusCode::UNAUTHORIZED
                    || status == StatusCode::UNPROCESSABLE_ENTITY
                {
                    CliError { code: USAGE, error }
                } else {
                    error.into()
                },
            );
        }
        Ok(text)
    }
}
