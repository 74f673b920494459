//! Roles end to end: the operator's `real-server role` on the room's store, then in the room an
//! owner makes a moderator, who removes a member's message for everyone.

mod common;

use common::*;
use serde_json::json;

/// `real-server --data-dir DIR role ARGS…`: (succeeded, stdout, stderr).
fn role(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_real-server"))
        .arg("--data-dir")
        .arg(dir)
        .arg("role")
        .args(args)
        .env_remove("MONGODB_URI")
        .output()
        .expect("run real-server role");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_operator_makes_an_owner_who_makes_a_moderator_who_removes_a_members_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (_, olga, olga_token) = join(&server).await;
    server.stop().await;

    let (ok, said, _) = role(dir.path(), &["list"]);
    assert!(
        ok && said.contains("nobody in room \"General\" has a role"),
        "{said}"
    );
    let (ok, said, _) = role(dir.path(), &["grant", &olga, "owner"]);
    assert!(
        ok && said.contains(&format!("{olga} (Anonymous) is now owner")),
        "{said}"
    );
    let (ok, said, _) = role(dir.path(), &["list"]);
    assert!(
        ok && said.contains(&format!("{olga}\towner\tAnonymous")),
        "{said}"
    );
    // Someone the room does not know: refused, saying how to find ids.
    let (ok, _, error) = role(dir.path(), &["grant", "nobody", "moderator"]);
    assert!(
        !ok && error.contains("has nobody with id nobody"),
        "{error}"
    );
    let (ok, _, error) = role(dir.path(), &["grant", &olga, "admin"]);
    assert!(!ok && error.contains("invalid value 'admin'"), "{error}");

    // The room, started again, knows her as its owner.
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut owner, handshake) = Client::open(&server).await;
    assert_eq!(handshake["payload"]["roles"][&olga], "owner", "{handshake}");
    owner
        .identify(json!({"userId": olga, "token": olga_token, "protocolVersion": 2}))
        .await;
    let (mut bob, bob_id, _) = join(&server).await;
    let (mut carol, carol_id, _) = join(&server).await;
    owner
        .send(json!({"type": "SET_ROLE", "payload": {"userId": bob_id, "role": "moderator"}}))
        .await;
    let told = bob.recv_type("ROLE").await;
    assert_eq!(
        told["payload"],
        json!({"userId": bob_id, "role": "moderator", "by": olga})
    );

    carol.say("spam, spam, spam", None).await;
    let spam = bob.recv_type("MESSAGE").await["payload"]["seq"].clone();
    bob.send(json!({"type": "DELETE_MESSAGE", "payload": {"target": spam, "nonce": "rm-1"}}))
        .await;
    let removed = carol.recv_type("MESSAGE_CHANGED").await["payload"].clone();
    assert_eq!(removed["removed"], true, "{removed}");
    assert_eq!(removed["rawMessage"], "");
    assert_eq!(
        removed["htmlMessage"],
        "<p><em>message removed by a moderator</em></p>\n"
    );
    // Carol, a member, removes nobody's: Bob's message stays.
    bob.say("a moderator's word", None).await;
    let word = carol.recv_type("MESSAGE").await["payload"]["seq"].clone();
    carol
        .send(json!({"type": "DELETE_MESSAGE", "payload": {"target": word, "nonce": "c-1"}}))
        .await;
    let refused = carol.recv_type("ERROR").await["payload"].clone();
    assert_eq!(
        (refused["code"].clone(), refused["nonce"].clone()),
        (json!("NOT_YOUR_MESSAGE"), json!("c-1"))
    );
    // The moderator kicks Carol: she is told why, then her socket closes with 4000.
    bob.send(json!({"type": "MODERATE",
        "payload": {"kind": "kick", "userId": carol_id, "reason": "cool down"}}))
        .await;
    let told = carol.recv_type("MODERATED").await["payload"].clone();
    assert_eq!(told["reason"], "cool down", "{told}");
    let close = carol.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4000);
    server.stop().await;
}

/// After the `BANNED` error, the close: 4001 with the reason, as a v1 client shows it.
async fn refused_as_banned(client: &mut Client, why: &str) {
    let refused = client.recv_type("ERROR").await["payload"].clone();
    assert_eq!(refused["code"], "BANNED", "{refused}");
    assert!(
        refused["message"].as_str().is_some_and(|m| m.contains(why)),
        "{refused}"
    );
    let close = client.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
    assert!(close.reason.contains(why), "{}", close.reason);
}

#[tokio::test]
async fn a_banned_v1_client_is_closed_with_the_reason_and_kept_out_with_its_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (_, olga, olga_token) = join(&server).await;
    server.stop().await;
    let (ok, said, _) = role(dir.path(), &["grant", &olga, "owner"]);
    assert!(ok, "{said}");

    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut owner, _) = Client::open(&server).await;
    owner
        .identify(json!({"userId": olga, "token": olga_token, "protocolVersion": 2}))
        .await;
    // Carol, on a v1 client, is banned for an hour with her address.
    let (mut carol, carol_id, carol_token) = join(&server).await;
    owner
        .send(
            json!({"type": "MODERATE", "payload": {"kind": "ban", "userId": carol_id,
            "minutes": 60, "reason": "spam links", "address": true, "nonce": "b-1"}}),
        )
        .await;
    refused_as_banned(&mut carol, "spam links").await;
    let told = owner.recv_type("MODERATED").await["payload"].clone();
    assert_eq!(
        (
            told["kind"].clone(),
            told["userId"].clone(),
            told.get("reason")
        ),
        (json!("ban"), json!(carol_id), None),
        "{told}"
    );
    // She cannot come back, nor get a new identity from her address.
    let hello = |info: serde_json::Value| json!({"type": "HANDSHAKE_USER_INFO", "payload": info});
    let (mut back, _) = Client::open(&server).await;
    back.send(hello(json!({"userId": carol_id, "token": carol_token})))
        .await;
    refused_as_banned(&mut back, "spam links").await;
    let (mut fresh, _) = Client::open(&server).await;
    fresh.send(hello(json!({}))).await;
    refused_as_banned(&mut fresh, "your network").await;
    server.stop().await;

    // The ban is stored: after a restart it holds.
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut back, handshake) = Client::open(&server).await;
    assert_eq!(
        handshake["payload"]["banned"][0]["userId"], carol_id,
        "{handshake}"
    );
    back.send(hello(json!({"userId": carol_id, "token": carol_token})))
        .await;
    refused_as_banned(&mut back, "spam links").await;
    server.stop().await;
}
