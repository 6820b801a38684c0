//! What a device request pays to check its bearer token: the same token verified every time
//! (signature check and JSON parse, the cache off) against verified once and then found in
//! the token cache (expiry, revocation and the path's cid still checked per request).
//!
//! `cargo bench -p seams --bench auth`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use axum::http::HeaderMap;
use criterion::{criterion_group, criterion_main, Criterion};
use schemas::DeviceId;
use seams::auth::{Auth, KeyRing, TOKEN_CACHE_ENTRIES};

fn ring() -> KeyRing {
    // As `daybook token key add` makes them: a dated kid, 64 hex characters of secret.
    KeyRing { keys: vec![("k1767225600".into(), b"3f9a".repeat(16))], revoked: HashMap::new() }
}

fn device_token(c: &mut Criterion) {
    let cid = "acme-cam-00a1b2c3d4e5";
    let uncached = Auth::with_token_cache(ring(), 0).unwrap();
    let cached = Auth::with_token_cache(ring(), TOKEN_CACHE_ENTRIES).unwrap();
    let token = cached.device_token(&DeviceId::parse(cid).unwrap(), Duration::from_secs(86_400));
    eprintln!("device token: {} bytes", token.len());
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    // Fill the cache to its bound with other devices' tokens, as at midnight: a hit then
    // searches a full shard, not a nearly empty one.
    for i in 0..TOKEN_CACHE_ENTRIES {
        let other = format!("acme-cam-{i:012x}");
        let t = cached.device_token(&DeviceId::parse(&other).unwrap(), Duration::from_secs(86_400));
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        cached.device(&h, &other).unwrap();
    }
    cached.device(&headers, cid).unwrap();

    let mut group = c.benchmark_group("auth_device");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("uncached", |b| b.iter(|| uncached.device(black_box(&headers), black_box(cid)).unwrap()));
    group.bench_function("cached", |b| b.iter(|| cached.device(black_box(&headers), black_box(cid)).unwrap()));
    group.finish();
}

criterion_group!(benches, device_token);
criterion_main!(benches);
