//! The embedded S3-protocol endpoint's own limits, over real HTTP on loopback: the snapshot
//! size cap counted on the bytes received (whatever the headers declare, however the key is
//! encoded), the header timeout, the connection cap, and the minimum body transfer rate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use infra::s3::{S3Config, S3Signer};
use infra::s3_server::{serve_with_limits, Limits};
use schemas::{Day, DayOffset, DeviceId, EventId, EventType, SegmentId, Timestamp};
use seams::{BlobSigner, ObjectKey, PresignedRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AK: &str = "test-access";
const SK: &str = "test-secret-key-0123456789";
/// The snapshot cap of every server here.
const CAP: u64 = 1024;
const TTL: Duration = Duration::from_secs(300);

struct Server {
    _dir: tempfile::TempDir,
    root: PathBuf,
    addr: SocketAddr,
    signer: S3Signer,
}

async fn start(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let root = dir.path().to_owned();
    let served = root.clone();
    tokio::spawn(async move {
        serve_with_limits(listener, &served, "daybook", AK, SK, CAP, limits, std::future::pending()).await
    });
    let signer = S3Signer::new(&S3Config {
        endpoint: Some(format!("http://{addr}")),
        public_url: None,
        bucket: "daybook".into(),
        region: "us-east-1".into(),
        credentials: Some((AK.into(), SK.into())),
        path_style: true,
    })
    .await;
    Server { _dir: dir, root, addr, signer }
}

fn cid() -> DeviceId {
    DeviceId::parse("cam-1").unwrap()
}

/// A snapshot key (`devices/cam-1/snapshots/….jpg`; the event id carries a `+`).
fn snapshot(n: i64) -> ObjectKey {
    let offset = DayOffset::parse("+01:00").unwrap();
    let id = EventId::new(&cid(), &EventType::parse("motion").unwrap(), Timestamp(1_767_323_045_000 + n), offset);
    ObjectKey::snapshot(&id.unwrap())
}

fn segment(n: u128) -> ObjectKey {
    ObjectKey::segment(&cid(), &SegmentId::generate(Day::parse_compact("20260102").unwrap(), n))
}

impl Server {
    async fn put_url(&self, key: &ObjectKey, length: Option<u64>) -> PresignedRequest {
        self.signer.presign_put(key, "image/jpeg", length, TTL).await.unwrap()
    }

    /// The request target (path and query) of a presigned URL.
    fn target(&self, req: &PresignedRequest) -> String {
        req.url.strip_prefix(&format!("http://{}", self.addr)).unwrap().to_owned()
    }

    /// Every regular file under the server's root (objects, metadata, temporary files).
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// The object's bytes as a presigned GET returns them (`None`: not found).
    async fn get(&self, key: &ObjectKey) -> Option<Vec<u8>> {
        let req = self.signer.presign_get(key, TTL).await.unwrap();
        let resp = reqwest::get(&req.url).await.unwrap();
        match resp.status().as_u16() {
            200 => Some(resp.bytes().await.unwrap().to_vec()),
            404 => None,
            s => panic!("GET {}: {s}", req.url),
        }
    }
}

#[derive(Clone, Copy)]
enum Framing {
    Length,
    Chunked,
}

/// One PUT on a fresh connection, written byte for byte as given (`target` as is on the
/// request line, `headers` after the signed ones), then the answer: status and body. A
/// connection the server closes or resets without an answer is `None`.
async fn raw_put(
    addr: SocketAddr,
    req: &PresignedRequest,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
) -> Option<(u16, String)> {
    let mut head = format!("PUT {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    // The length is this function's to write (a signed one must match the body).
    let signed = req.headers.iter().filter(|(k, _)| k != "content-length");
    for (k, v) in signed.map(|(k, v)| (k.as_str(), v.as_str())).chain(headers.iter().copied()) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match framing {
        Framing::Length => head.push_str(&format!("content-length: {}\r\n\r\n", body.len())),
        Framing::Chunked => head.push_str("transfer-encoding: chunked\r\n\r\n"),
    }
    let mut wire = head.into_bytes();
    match framing {
        Framing::Length => wire.extend_from_slice(body),
        Framing::Chunked => {
            for chunk in body.chunks(1000) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    // The server may answer (and close) before the whole body is written.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&wire).await;
        wr
    });
    let answer = read_answer(&mut rd, Duration::from_secs(10)).await;
    drop(writer.await);
    answer
}

/// Reads until the server closes; the status and body of what it sent, if anything.
async fn read_answer(rd: &mut (impl AsyncReadExt + Unpin), within: Duration) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed within {within:?}");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// Whether the server closes `conn` (EOF or reset) within `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A plain presigned snapshot PUT without a signed length, with a body past the cap but
/// `x-amz-decoded-content-length: 10` (alone, or with a chunked body and no content-length):
/// refused with 413 and nothing stored, not even a partial file. Genuine uploads up to the cap
/// still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_body_past_the_cap_is_refused_whatever_the_headers_declare() {
    let s = start(Limits::default()).await;
    let big = vec![7u8; 8 * CAP as usize];
    let lie = [("x-amz-decoded-content-length", "10")];
    for (i, framing) in [Framing::Length, Framing::Chunked].into_iter().enumerate() {
        let key = snapshot(i as i64);
        let req = s.put_url(&key, None).await;
        let answer = raw_put(s.addr, &req, &s.target(&req), &lie, &big, framing).await;
        let (status, body) = answer.expect("an answer");
        assert_eq!(status, 413, "framing {i}: {body}");
        assert!(body.contains("EntityTooLarge"), "{body}");
        assert_eq!(s.get(&key).await, None, "framing {i}: the oversized snapshot was stored");
        assert_eq!(s.files(), Vec::<PathBuf>::new(), "framing {i}: files left behind");
    }

    // At the cap exactly, declared or not, a snapshot is taken; one byte more is not.
    for (n, declared) in [(10, true), (11, false)] {
        let key = snapshot(n);
        let req = s.put_url(&key, declared.then_some(CAP)).await;
        let answer = raw_put(s.addr, &req, &s.target(&req), &[], &vec![1u8; CAP as usize], Framing::Length).await;
        assert_eq!(answer.map(|a| a.0), Some(200));
        assert_eq!(s.get(&key).await.map(|b| b.len()), Some(CAP as usize));
    }
    let key = snapshot(12);
    let req = s.put_url(&key, None).await;
    let one_more = vec![1u8; CAP as usize + 1];
    let answer = raw_put(s.addr, &req, &s.target(&req), &lie, &one_more, Framing::Chunked).await;
    assert_eq!(answer.map(|a| a.0), Some(413));
    assert_eq!(s.get(&key).await, None);

    // Segments are not snapshots: no cap.
    let key = segment(1);
    let req = s.put_url(&key, None).await;
    let answer = raw_put(s.addr, &req, &s.target(&req), &[], &big, Framing::Length).await;
    assert_eq!(answer.map(|a| a.0), Some(200));
    assert_eq!(s.get(&key).await.map(|b| b.len()), Some(big.len()));
}

/// The same signed snapshot URL with its path encoded otherwise (`%73napshots`, `%2F` for the
/// slashes) still verifies (s3s checks the signature over the decoded path): the cap still
/// applies, by declared length and by bytes received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_snapshot_key_is_capped_too() {
    let s = start(Limits::default()).await;
    let big = vec![7u8; 8 * CAP as usize];
    let encodings: [(&str, &str); 3] = [
        ("/snapshots/", "/%73napshots/"),
        ("/snapshots/", "/%73%6E%61%70%73%68%6F%74%73/"),
        ("/devices/cam-1/snapshots/", "/devices%2Fcam-1%2Fsnapshots%2F"),
    ];
    for (i, (from, to)) in encodings.into_iter().enumerate() {
        let key = snapshot(i as i64);
        let req = s.put_url(&key, None).await;
        let target = s.target(&req).replacen(from, to, 1);
        assert_ne!(target, s.target(&req));
        for (headers, framing) in
            [(&[][..], Framing::Length), (&[("x-amz-decoded-content-length", "10")][..], Framing::Chunked)]
        {
            let answer = raw_put(s.addr, &req, &target, headers, &big, framing).await;
            let (status, body) = answer.expect("an answer");
            assert_eq!(status, 413, "{target}: {body}");
            assert_eq!(s.get(&key).await, None, "{target}: the oversized snapshot was stored");
        }
        // The encoded path is the same key: a small body is taken.
        let answer = raw_put(s.addr, &req, &target, &[], b"small", Framing::Length).await;
        assert_eq!(answer.map(|a| a.0), Some(200), "{target}");
        assert_eq!(s.get(&key).await.as_deref(), Some(&b"small"[..]));
    }
}

/// A connection that sends nothing, half a header, or its header a byte at a time is closed
/// once the header timeout has passed; a genuine request is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_headers_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let s = start(Limits { header_timeout: timeout, ..Limits::default() }).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut half = TcpStream::connect(s.addr).await.unwrap();
    half.write_all(b"PUT /daybook/devices/cam-1/segments/x HTTP/1.1\r\nhost: 127.0.0.1\r\n").await.unwrap();
    let mut dribble = TcpStream::connect(s.addr).await.unwrap();
    let (mut dribble_rd, mut dribble_wr) = dribble.split();
    let dribbling = async {
        for b in b"GET /daybook/devices/cam-1/segments/x HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: 0123456789\r\n\r\n" {
            if dribble_wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    let (_, dribble_closed) = tokio::join!(dribbling, async {
        let mut sink = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match dribble_rd.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    });
    assert!(dribble_closed, "a header sent a byte every 40 ms was not cut off");
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await, "silent connection still open");
    assert!(closed_within(&mut half, Duration::from_secs(3)).await, "half-sent header still open");
    assert!(started.elapsed() >= timeout - Duration::from_millis(50), "closed before the timeout");

    let key = segment(1);
    let req = s.put_url(&key, None).await;
    let answer = raw_put(s.addr, &req, &s.target(&req), &[], b"video", Framing::Length).await;
    assert_eq!(answer.map(|a| a.0), Some(200));
}

/// At the connection cap, a new connection evicts the oldest idle one (connected, nothing
/// sent): a genuine request is served at once. When every connection is inside a request, a
/// new one is answered 503 (SlowDown, Retry-After) and closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_make_room_and_busy_ones_do_not() {
    let limits = Limits { max_connections: 4, ..Limits::default() };
    let s = start(limits.clone()).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let key = segment(1);
    let req = s.put_url(&key, None).await;
    let started = Instant::now();
    let answer = raw_put(s.addr, &req, &s.target(&req), &[], b"video", Framing::Length).await;
    assert_eq!(answer.map(|a| a.0), Some(200));
    assert!(started.elapsed() < Duration::from_secs(2), "served after {:?}", started.elapsed());
    assert!(closed_within(&mut idle[0], Duration::from_secs(2)).await, "the oldest idle connection was not evicted");

    // Every connection inside a request (an upload under way: the server asked for its body).
    let s = start(limits).await;
    let mut busy = Vec::new();
    for i in 0..4 {
        let req = s.put_url(&segment(10 + i), None).await;
        let mut head = format!("PUT {} HTTP/1.1\r\nhost: {}\r\n", s.target(&req), s.addr);
        for (k, v) in &req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("content-length: 1000000\r\nexpect: 100-continue\r\n\r\n");
        let mut conn = TcpStream::connect(s.addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut continue_line = [0u8; 25];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut continue_line)).await.unwrap().unwrap();
        assert!(continue_line.starts_with(b"HTTP/1.1 100 Continue"), "{}", String::from_utf8_lossy(&continue_line));
        conn.write_all(&[0u8; 1000]).await.unwrap();
        busy.push(conn);
    }
    let started = Instant::now();
    let req = s.put_url(&segment(20), None).await;
    let answer = raw_put(s.addr, &req, &s.target(&req), &[], b"video", Framing::Length).await;
    let (status, body) = answer.expect("an answer");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("SlowDown"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused after {:?}", started.elapsed());
    for (i, conn) in busy.iter_mut().enumerate() {
        assert!(!closed_within(conn, Duration::from_millis(10)).await, "busy connection {i} was closed");
    }
}

/// With a minimum rate of 1000 B/s over 1 s windows: a body trickling at 200 B/s gets its
/// connection closed within a couple of windows (and leaves nothing behind), while a body at
/// 20 kB/s that takes three windows is taken whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_off_and_a_steady_one_is_not() {
    let s = start(Limits { min_body_rate: 1000, rate_window: Duration::from_secs(1), ..Limits::default() }).await;
    let send = |key: ObjectKey, total: usize, piece: usize| {
        let s = &s;
        async move {
            let req = s.put_url(&key, None).await;
            let mut head = format!("PUT {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n", s.target(&req), s.addr);
            for (k, v) in &req.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!("content-length: {total}\r\n\r\n"));
            let conn = TcpStream::connect(s.addr).await.unwrap();
            let (mut rd, mut wr) = conn.into_split();
            let started = Instant::now();
            let writer = tokio::spawn(async move {
                wr.write_all(head.as_bytes()).await?;
                let mut sent = 0;
                while sent < total {
                    let n = piece.min(total - sent);
                    wr.write_all(&vec![3u8; n]).await?;
                    sent += n;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                std::io::Result::Ok(wr)
            });
            let answer = read_answer(&mut rd, Duration::from_secs(6)).await;
            let elapsed = started.elapsed();
            writer.abort();
            (answer, elapsed)
        }
    };
    let trickle = segment(1);
    let steady = segment(2);
    // 200 B/s for 10 000 bytes (50 s), and 20 kB/s for 60 000 bytes (3 s).
    let ((cut, cut_after), (whole, whole_after)) =
        tokio::join!(send(trickle.clone(), 10_000, 20), send(steady.clone(), 60_000, 2_000));
    assert!(!matches!(cut, Some((200, _))), "the trickle was taken: {cut:?}");
    assert!(cut_after < Duration::from_secs(4), "the trickle was cut off only after {cut_after:?}");
    assert_eq!(whole.map(|a| a.0), Some(200), "the steady body was refused");
    assert!(whole_after > Duration::from_millis(2500), "{whole_after:?}");
    assert_eq!(s.get(&trickle).await, None);
    assert_eq!(s.get(&steady).await.map(|b| b.len()), Some(60_000));
    let left: Vec<_> = s.files().into_iter().filter(|p| p.to_string_lossy().contains(".tmp.")).collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
}
