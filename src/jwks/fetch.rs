//! One fetch of an issuer's keys over HTTP: the discovery document when configured, then the
//! JWKS. Bounded in time (the whole fetch) and in size (each body).

use std::time::Duration;

use reqwest::header::ACCEPT;
use serde::Deserialize;

use crate::config::{KeySource, TrustedIssuerConfig};
use crate::keys::{KeyError, VerificationKeys};

/// A discovery document or key set larger than this is refused.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a fetch produced no keys. The last good keys stay in use.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Http(reqwest::Error),
    #[error("endpoint answered HTTP {0}")]
    Status(u16),
    #[error("response is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("no answer within the fetch timeout")]
    Timeout,
    #[error("discovery document: {0}")]
    Discovery(&'static str),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl From<reqwest::Error> for FetchError {
    fn from(error: reqwest::Error) -> Self {
        // The URL is configuration, not news; leave it out of logs.
        FetchError::Http(error.without_url())
    }
}

/// The fields of OpenID discovery / RFC 8414 metadata that matter here.
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

/// Fetches one issuer's keys.
#[derive(Debug)]
pub(super) struct Fetcher {
    http: reqwest::Client,
    issuer: String,
    source: KeySource,
    timeout: Duration,
}

impl Fetcher {
    pub(super) fn new(config: &TrustedIssuerConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout())
            .connect_timeout(config.fetch_timeout())
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            issuer: config.issuer.clone(),
            source: config.source(),
            timeout: config.fetch_timeout(),
        })
    }

    /// The issuer's current keys, and how many members of its key set were skipped.
    pub(super) async fn fetch(&self) -> Result<(VerificationKeys, usize), FetchError> {
        tokio::time::timeout(self.timeout, self.fetch_unbounded())
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn fetch_unbounded(&self) -> Result<(VerificationKeys, usize), FetchError> {
        let jwks_url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery(url) => self.discover(url).await?,
        };
        let body = self.get(&jwks_url).await?;
        Ok(VerificationKeys::from_fetched_jwks(&body)?)
    }

    /// The `jwks_uri` of the metadata at `url`, whose `issuer` must be the configured one
    /// (OpenID Connect Discovery §4.3, RFC 8414 §3.3).
    async fn discover(&self, url: &str) -> Result<String, FetchError> {
        let body = self.get(url).await?;
        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|_| FetchError::Discovery("not a JSON metadata object"))?;
        if metadata.issuer.as_deref() != Some(self.issuer.as_str()) {
            return Err(FetchError::Discovery("issuer is not the configured one"));
        }
        let jwks_uri = metadata
            .jwks_uri
            .ok_or(FetchError::Discovery("no jwks_uri"))?;
        match reqwest::Url::parse(&jwks_uri) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(jwks_uri),
            _ => Err(FetchError::Discovery(
                "jwks_uri is not an http or https URL",
            )),
        }
    }

    /// The body of a successful `GET url`, at most [`MAX_BODY_BYTES`].
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let mut response = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
