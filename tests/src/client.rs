//! A small HTTP client for daybook's contracts, used as a device and as a viewer would.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;

/// Talks to one daybook HTTP listener with one bearer token.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client,
    base: String,
    token: String,
}

impl Http {
    /// A client for `base` using `token`.
    pub fn new(base: &str, token: &str) -> Self {
        // Idle connections go before the server's keep-alive limit (10 s) closes them.
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        Self { client, base: base.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    /// The same token against another server.
    pub fn at(&self, base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), ..self.clone() }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self { token: token.to_owned(), ..self.clone() }
    }

    /// POSTs a raw body; returns status and JSON (or `Value::Null`).
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs JSON.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(path, body.to_string()).await
    }

    /// DELETEs; returns status and JSON (or `Value::Null`).
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let resp =
            self.client.delete(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// PUTs with no body; returns status and JSON (or `Value::Null`).
    pub async fn put(&self, path: &str) -> (StatusCode, Value) {
        let resp =
            self.client.put(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GETs JSON.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp =
            self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Performs a presigned request from an answer's `{method, url, headers}` object.
pub async fn presigned(req: &Value, body: Vec<u8>) -> reqwest::Response {
    let client = Client::new();
    let method: reqwest::Method = req["method"].as_str().unwrap_or("GET").parse().expect("method");
    let mut b = client.request(method, req["url"].as_str().expect("url"));
    if let Some(h) = req["headers"].as_object() {
        for (k, v) in h {
            b = b.header(k, v.as_str().expect("header value"));
        }
    }
    b.body(body).send().await.expect("presigned request")
}

/// GETs a presigned URL.
pub async fn download(url: &str) -> (StatusCode, Vec<u8>) {
    let resp = Client::new().get(url).send().await.expect("presigned get");
    let status = resp.status();
    (status, resp.bytes().await.expect("body").to_vec())
}
