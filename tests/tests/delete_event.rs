//! The owner deletes an event, end to end on the embedded default: the deletion goes through
//! the log like a device's report, the projector applies it, the purger deletes the objects
//! no live event maps from the embedded S3 endpoint; then the store rebuilt from the log
//! (`daybook rebuild`) gives the same answers.

use std::time::Duration;

use tests::app::spawn_app;
use tests::client::Http;
use tests::flow::{self, Owners};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managing_viewer_deletes_an_event() {
    let server = spawn_app().await;
    let cid = "cam-del";
    let device = Http::new(&server.http, &server.device_token(cid));
    let reader = Http::new(&server.http, &server.viewer_token(&[cid]));
    let stranger = Http::new(&server.http, &server.managing_viewer_token(&["cam-other"]));
    let manager = Http::new(&server.http, &server.managing_viewer_token(&[cid]));

    let expect = flow::act_as_device(&device, cid).await;
    flow::wait_projected(&reader, &expect, Duration::from_secs(30)).await;
    let owners = Owners { reader: &reader, stranger: &stranger, manager: &manager, device: &device };
    let rest = flow::delete_as_owner(&owners, &expect, Duration::from_secs(30)).await;

    let live = flow::answers(&reader, &rest).await;
    assert!(live["events"].get(&expect.a).is_none(), "{live}");

    // The store rebuilt from the log (`daybook rebuild`) answers the same: the deletion is a
    // report like the others, replayed in its place.
    let server = server.rebuilt().await;
    let reader = reader.at(&server.http);
    assert_eq!(flow::answers(&reader, &rest).await, live, "the rebuilt store answers as the live one did");
    let date = format!("{}-{}-{}", &rest.b[..4], &rest.b[4..6], &rest.b[6..8]);
    assert_eq!(flow::list_day(&reader, cid, &date).await, rest.today);
    assert_eq!(reader.get(&format!("/v1/events/{}", expect.a)).await.0, 404);
    server.stop().await;
}
