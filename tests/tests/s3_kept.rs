//! Kept events' copies on an external bucket (`infra::s3::S3Signer::reconcile_kept`), against a
//! real S3-protocol server (s3s-fs) on loopback: copies are made server-side under `kept/`, a
//! copy holds the original's bytes, an original already gone is counted missing, copies of
//! events no longer kept are deleted, and a round with nothing to change changes nothing.

use std::collections::HashSet;
use std::time::Duration;

use infra::s3::KeptCopies;
use schemas::{DayOffset, DeviceId, EventId, EventType, SegmentId, Timestamp};
use seams::{BlobSigner, ObjectKey};

async fn put(signer: &dyn BlobSigner, key: &ObjectKey, bytes: &[u8]) {
    let req = signer.presign_put(key, "video/mp4", Some(bytes.len() as u64), Duration::from_secs(60)).await.unwrap();
    let mut put = reqwest::Client::new().put(&req.url).body(bytes.to_vec());
    for (name, value) in &req.headers {
        if name != "content-length" {
            put = put.header(name, value);
        }
    }
    let resp = put.send().await.unwrap();
    assert!(resp.status().is_success(), "PUT {}: {}", key.as_str(), resp.status());
}

async fn get(signer: &dyn BlobSigner, key: &ObjectKey) -> (u16, Vec<u8>) {
    let url = signer.presign_get(key, Duration::from_secs(60)).await.unwrap().url;
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn kept_copies_follow_the_kept_objects() {
    let (_dir, bucket) = tests::s3::local_signer().await;
    let cid = DeviceId::parse("cam-kept").unwrap();
    let event =
        EventId::new(&cid, &EventType::parse("motion").unwrap(), Timestamp::now(), DayOffset::default()).unwrap();
    let snapshot = ObjectKey::snapshot(&event);
    let segment = ObjectKey::segment(&cid, &SegmentId::parse("seg-1").unwrap());
    let never_uploaded = ObjectKey::segment(&cid, &SegmentId::parse("seg-gone").unwrap());
    put(&bucket, &snapshot, b"jpeg bytes").await;
    put(&bucket, &segment, &[7u8; 3000]).await;
    let keys = |ks: &[&ObjectKey]| ks.iter().map(|k| k.as_str().to_owned()).collect::<HashSet<_>>();

    let kept = keys(&[&snapshot, &segment, &never_uploaded]);
    let done = bucket.reconcile_kept(&kept).await.unwrap();
    assert_eq!(done, KeptCopies { copied: 2, missing: 1, removed: 0 });
    assert_eq!(get(&bucket, &snapshot.kept_copy()).await, (200, b"jpeg bytes".to_vec()));
    assert_eq!(get(&bucket, &segment.kept_copy()).await, (200, vec![7u8; 3000]));
    // The original going (the lifecycle rule) leaves the copy.
    assert_eq!(bucket.reconcile_kept(&kept).await.unwrap(), KeptCopies { missing: 1, ..KeptCopies::default() });

    // The event is un-kept, deleted or erased: its copies go; again, nothing more.
    let done = bucket.reconcile_kept(&keys(&[&segment])).await.unwrap();
    assert_eq!(done, KeptCopies { removed: 1, ..KeptCopies::default() });
    assert_eq!(get(&bucket, &snapshot.kept_copy()).await.0, 404);
    assert_eq!(get(&bucket, &snapshot).await.0, 200, "the original is the lifecycle rule's to expire");
    assert_eq!(
        bucket.reconcile_kept(&HashSet::new()).await.unwrap(),
        KeptCopies { removed: 1, ..KeptCopies::default() }
    );
    assert_eq!(get(&bucket, &segment.kept_copy()).await.0, 404);
    assert_eq!(bucket.reconcile_kept(&HashSet::new()).await.unwrap(), KeptCopies::default());
}
