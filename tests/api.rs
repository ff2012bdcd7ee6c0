//! The HTTP API over real sockets against a `lamed serve` started by the
//! test: Lamed's response shapes, CORS, auth, bad input, batches, restarts.

// The OpenAPI contract, checked by third-party tools (in this binary, to
// spare a link).
#[path = "api/openapi.rs"]
mod openapi;
mod util;

use serde_json::json;
use util::{track, Server};

/// Sends events that should all be answered 200 `{}`.
async fn send_all(server: &Server, paths: &[String]) {
    for path in paths {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        assert_eq!(&answer.body[..], b"{}");
    }
}

/// The exact Lamed `/experiments` shape for a namespace with two
/// experiments (one with no goal yet), `scope` filtering, and delete.
#[tokio::test]
async fn experiments_shape_scope_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    send_all(
        &server,
        &[
            track("shop", "button color", "red", "participate", "u1"),
            track("shop", "button color", "red", "participate", "u1"),
            track("shop", "button color", "blue", "participate", "u2"),
            track("shop", "button color", "blue", "participate", "u3"),
            track("shop", "button color", "blue", "checkout", "u2"),
            track("shop", "button color", "blue", "checkout", "u2"),
            track("shop", "headline", "long", "participate", "u4"),
        ],
    )
    .await;
    let answer = server.get_with_key("/experiments?namespace=shop").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json().unwrap(),
        json!([
            {"meta": {"scope": null}},
            {"experiment": "button color", "goals": [
                {"goal": "checkout", "results": [
                    {"label": "blue", "successes": 1, "trials": 2},
                    {"label": "red", "successes": 0, "trials": 1}]}]},
            {"experiment": "headline", "goals": []}
        ])
    );
    let answer = server
        .get_with_key("/experiments?namespace=shop&scope=headline")
        .await;
    assert_eq!(
        answer.json().unwrap(),
        json!([{"meta": {"scope": "headline"}}, {"experiment": "headline", "goals": []}])
    );
    let headers = [("x-api-key", server.api_key.as_str())];
    let answer = server
        .request(
            "DELETE",
            "/delete?namespace=shop&experiment=headline",
            &headers,
            b"",
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let answer = server
        .request(
            "DELETE",
            "/delete?namespace=shop&experiment=headline",
            &headers,
            b"",
        )
        .await;
    assert_eq!(answer.status, 404);
    assert!(answer.json().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("headline"));
    let body = server
        .get_with_key("/experiments?namespace=shop")
        .await
        .json()
        .unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(body[1]["experiment"], "button color");
    // The default namespace answers even when empty.
    let answer = server.get_with_key("/experiments").await;
    assert_eq!(answer.json().unwrap(), json!([{"meta": {"scope": null}}]));
}

/// CORS on every response (exposing `ETag`) and preflight on every path
/// (allowing `If-Match`); no caching.
#[tokio::test]
async fn cors_and_cache_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    for path in ["/track", "/experiments", "/delete", "/event", "/anything"] {
        let answer = server
            .request(
                "OPTIONS",
                path,
                &[
                    ("origin", "https://site.example"),
                    ("access-control-request-method", "GET"),
                    (
                        "access-control-request-headers",
                        "x-api-key, content-type, authorization, if-match",
                    ),
                ],
                b"",
            )
            .await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.headers["access-control-allow-origin"], "*");
        let allowed = answer.headers["access-control-allow-headers"]
            .to_str()
            .unwrap();
        for header in ["content-type", "x-api-key", "authorization", "if-match"] {
            assert!(allowed.contains(header), "{path}: {allowed}");
        }
    }
    for (path, status) in [
        (track("ns", "e", "v", "participate", "u"), 200),
        ("/track".to_owned(), 400),
        ("/experiments".to_owned(), 401),
        ("/nowhere".to_owned(), 404),
    ] {
        let answer = server
            .request("GET", &path, &[("origin", "https://site.example")], b"")
            .await;
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(answer.headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(
            answer.headers["cache-control"], "no-cache, no-store, must-revalidate",
            "{path}"
        );
        // A page may read a record's version, to send it back in If-Match.
        let exposed = answer.headers["access-control-expose-headers"]
            .to_str()
            .unwrap();
        assert!(
            exposed.to_ascii_lowercase().contains("etag"),
            "{path}: {exposed}"
        );
    }
}

/// Missing key → 401, wrong key → 403, on every private endpoint; the
/// Authorization header works too.
#[tokio::test]
async fn api_key_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    for (method, path) in [
        ("GET", "/experiments"),
        ("DELETE", "/delete?experiment=x"),
        ("GET", "/metrics"),
        ("GET", "/api/experiments/x/report"),
    ] {
        let none = server.request(method, path, &[], b"").await;
        assert_eq!(none.status, 401, "{path}");
        assert!(none.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("X-Api-Key"));
        let wrong = server
            .request(
                method,
                path,
                &[("x-api-key", "not-the-key-0000000000")],
                b"",
            )
            .await;
        assert_eq!(wrong.status, 403, "{path}");
        let almost = format!("{}x", server.api_key);
        let wrong = server
            .request(method, path, &[("x-api-key", &almost)], b"")
            .await;
        assert_eq!(wrong.status, 403, "{path}");
    }
    let bearer = format!("Bearer {}", server.api_key);
    let answer = server
        .request("GET", "/experiments", &[("authorization", &bearer)], b"")
        .await;
    assert_eq!(answer.status, 200);
}

/// One bad request: method, path, headers, body, expected status, and a
/// piece of the expected error message.
type BadRequest<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    u16,
    &'a str,
);

/// At least 25 bad requests, each answered 4xx with a JSON message naming
/// the problem; the server keeps counting correctly afterwards.
#[tokio::test]
async fn bad_requests_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--max-variants",
            "2",
            "--max-experiments",
            "2",
            "--max-goals",
            "1",
            "--max-namespaces",
            "2",
            "--max-batch-events",
            "3",
        ],
    );
    let key = server.api_key.clone();
    let ok = "experiment=e&variant=v&event=participate&uuid=u";
    let long = "x".repeat(201);
    let long_uuid = "u".repeat(129);
    let long_ns = "n".repeat(65);
    // Fill the caps first.
    send_all(
        &server,
        &[
            track("caps", "e1", "a", "participate", "1"),
            track("caps", "e1", "b", "participate", "1"),
            track("caps", "e1", "a", "g1", "1"),
            track("caps", "e2", "a", "participate", "1"),
            track("ns2", "e", "a", "participate", "1"),
        ],
    )
    .await;
    let cases: Vec<BadRequest<'_>> = vec![
        (
            "GET",
            "/track".into(),
            vec![],
            vec![],
            400,
            "'experiment' is missing",
        ),
        (
            "GET",
            "/track?experiment=e&variant=v&event=participate".into(),
            vec![],
            vec![],
            400,
            "'uuid' is missing",
        ),
        (
            "GET",
            "/track?experiment=e&uuid=u&event=participate".into(),
            vec![],
            vec![],
            400,
            "'variant' is missing",
        ),
        (
            "GET",
            "/track?experiment=e&uuid=u&variant=v".into(),
            vec![],
            vec![],
            400,
            "'event' is missing",
        ),
        (
            "GET",
            "/track?experiment=&variant=v&event=participate&uuid=u".into(),
            vec![],
            vec![],
            400,
            "'experiment' must not be empty",
        ),
        (
            "GET",
            "/track?experiment=e&variant=&event=participate&uuid=u".into(),
            vec![],
            vec![],
            400,
            "'variant' must not be empty",
        ),
        (
            "GET",
            "/track?experiment=e&variant=v&event=&uuid=u".into(),
            vec![],
            vec![],
            400,
            "'event' must not be empty",
        ),
        (
            "GET",
            "/track?experiment=e&variant=v&event=participate&uuid=".into(),
            vec![],
            vec![],
            400,
            "'uuid' must not be empty",
        ),
        (
            "GET",
            format!("/track?{ok}&namespace="),
            vec![],
            vec![],
            400,
            "'namespace' must not be empty",
        ),
        (
            "GET",
            format!("/track?experiment={long}&variant=v&event=participate&uuid=u"),
            vec![],
            vec![],
            400,
            "'experiment' is longer than 200 bytes",
        ),
        (
            "GET",
            format!("/track?experiment=e&variant={long}&event=participate&uuid=u"),
            vec![],
            vec![],
            400,
            "'variant' is longer than 200 bytes",
        ),
        (
            "GET",
            format!("/track?experiment=e&variant=v&event={long}&uuid=u"),
            vec![],
            vec![],
            400,
            "'event' is longer than 200 bytes",
        ),
        (
            "GET",
            format!("/track?experiment=e&variant=v&event=participate&uuid={long_uuid}"),
            vec![],
            vec![],
            400,
            "'uuid' is longer than 128 bytes",
        ),
        (
            "GET",
            format!("/track?{ok}&namespace={long_ns}"),
            vec![],
            vec![],
            400,
            "'namespace' is longer than 64 bytes",
        ),
        (
            "GET",
            "/track?experiment=a%0Ab&variant=v&event=participate&uuid=u".into(),
            vec![],
            vec![],
            400,
            "'experiment' must not contain control characters",
        ),
        (
            "GET",
            "/track?experiment=e&variant=v%00&event=participate&uuid=u".into(),
            vec![],
            vec![],
            400,
            "'variant' must not contain control characters",
        ),
        (
            "GET",
            "/track?experiment=%FF%FE&variant=v&event=participate&uuid=u".into(),
            vec![],
            vec![],
            400,
            "'experiment' is not valid UTF-8",
        ),
        (
            "GET",
            format!("/track?{ok}&uuid=again"),
            vec![],
            vec![],
            400,
            "'uuid' is given more than once",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            b"{not json".to_vec(),
            400,
            "body must be a JSON array",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            b"{\"experiment\": \"e\"}".to_vec(),
            400,
            "body must be a JSON array",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            b"[]".to_vec(),
            400,
            "batch holds no events",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            br#"[{"experiment":"e","variant":"v","event":"participate","uuid":"1"},{},{},{}]"#
                .to_vec(),
            413,
            "the limit is 3",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            br#"[{"experiment":"e","variant":"v","event":"participate","uuid":1}]"#.to_vec(),
            422,
            "'uuid' must be a string",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            br#"[5]"#.to_vec(),
            422,
            "must be a JSON object",
        ),
        (
            "POST",
            "/track".into(),
            vec![],
            vec![b'['; 3 * 1024 * 1024],
            413,
            "too large",
        ),
        (
            "PUT",
            "/track".into(),
            vec![],
            vec![],
            405,
            "method not allowed",
        ),
        (
            "DELETE",
            "/experiments".into(),
            vec![("x-api-key", &key)],
            vec![],
            405,
            "method not allowed",
        ),
        (
            "GET",
            "/delete?experiment=e".into(),
            vec![("x-api-key", &key)],
            vec![],
            405,
            "method not allowed",
        ),
        ("GET", "/nope".into(), vec![], vec![], 404, "no such path"),
        (
            "GET",
            "/experiments?namespace=never-used".into(),
            vec![("x-api-key", &key)],
            vec![],
            404,
            "namespace 'never-used' has no experiments",
        ),
        (
            "GET",
            "/experiments?namespace=%FF".into(),
            vec![("x-api-key", &key)],
            vec![],
            400,
            "'namespace' is not valid UTF-8",
        ),
        (
            "GET",
            "/experiments?scope=a%01".into(),
            vec![("x-api-key", &key)],
            vec![],
            400,
            "'scope' must not contain control characters",
        ),
        (
            "DELETE",
            "/delete?namespace=caps".into(),
            vec![("x-api-key", &key)],
            vec![],
            400,
            "'experiment' is missing",
        ),
        (
            "DELETE",
            "/delete?namespace=caps&experiment=nope".into(),
            vec![("x-api-key", &key)],
            vec![],
            404,
            "experiment 'nope' not found",
        ),
    ];
    assert!(cases.len() >= 25);
    for (method, path, headers, body, status, message) in &cases {
        let answer = server.request(method, path, headers, body).await;
        let shown = format!(
            "{method} {}: {} {}",
            &path[..path.len().min(80)],
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
        );
        assert_eq!(answer.status, *status, "{shown}");
        let error = answer.json().unwrap_or_else(|e| panic!("{shown}: {e}"))["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: no error message"))
            .to_owned();
        assert!(error.contains(message), "{shown}: expected {message:?}");
    }
    // Over a cap: well-formed, so 200 and ignored (a refusal would be
    // re-sent by AlephBet forever), counted nowhere.
    for path in [
        track("caps", "e3", "a", "participate", "u"),
        track("caps", "e1", "c", "participate", "u"),
        track("caps", "e1", "a", "g2", "u"),
        track("ns4", "e", "a", "participate", "u"),
    ] {
        let answer = server.get(&path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.json().unwrap(), json!({"ignored": "cap"}), "{path}");
    }
    let ignored = server.get_with_key("/api/ignored?namespace=caps").await;
    let top = &ignored.json().unwrap()["top"];
    assert_eq!(top.as_array().unwrap().len(), 2, "{top}");
    assert_eq!(
        top,
        &json!([
            {"experiment": "e1", "reason": "cap", "events": 2},
            {"experiment": "e3", "reason": "cap", "events": 1}
        ])
    );
    // Still serving, and nothing refused was counted.
    send_all(&server, &[track("caps", "e1", "b", "g1", "2")]).await;
    let counts = server.counts("caps").await;
    // e1's two variants with their goal, and e2's one participant.
    assert_eq!(counts.values().sum::<u64>(), 5, "{counts:?}");
    let metrics = server.get_with_key("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("lamed_rejected_total{reason=\"missing_parameter\"}"),
        "{text}"
    );
    assert!(text.contains("lamed_events_counted_total 6"), "{text}");
    assert!(
        text.contains("lamed_events_ignored_total{reason=\"cap\"} 4"),
        "{text}"
    );
}

/// A batch answers one result per event; duplicates and invalid events
/// are reported, valid ones stored.
#[tokio::test]
async fn batch_reports_each_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let batch = json!([
        {"namespace": "b", "experiment": "e", "variant": "v", "event": "participate", "uuid": "1"},
        {"namespace": "b", "experiment": "e", "variant": "v", "event": "participate", "uuid": "1"},
        {"namespace": "b", "experiment": "e", "variant": "v", "event": "buy", "uuid": "1"},
    ]);
    let answer = server
        .request(
            "POST",
            "/track",
            &[("content-type", "application/json")],
            batch.to_string().as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json().unwrap(),
        json!({"counted": 2, "duplicates": 1, "ignored": 0, "refused": 0, "results": [
            {"status": "counted"}, {"status": "duplicate"}, {"status": "counted"}]})
    );
    let batch = json!([
        {"namespace": "b", "experiment": "e", "variant": "v", "event": "participate", "uuid": "2"},
        {"namespace": "b", "experiment": "e", "variant": "v", "event": "participate"},
    ]);
    let answer = server
        .request("POST", "/track", &[], batch.to_string().as_bytes())
        .await;
    assert_eq!(answer.status, 422);
    let body = answer.json().unwrap();
    assert_eq!(body["results"][0]["status"], "counted");
    assert_eq!(
        body["results"][1]["error"],
        "event 1: parameter 'uuid' is missing"
    );
    assert_eq!(server.counts("b").await.values().sum::<u64>(), 3);
}

/// The alephbet-rails path `/event` counts into the same counters as
/// `/track`, and an `extra_wiring` path from config.json serves its handler.
#[tokio::test]
async fn event_path_and_extra_wiring() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({
            "redis": {"host": "127.0.0.1", "port": 6379},
            "uuid_expiry_seconds": 86400,
            "extra_wiring": [{
                "lambda": {"FunctionName": "lamed-track", "Handler": "lamed.track", "MemorySize": 128, "Timeout": 3},
                "api_gateway": {"pathPart": "my_tracking_endpoint", "method": {"httpMethod": "GET", "apiKeyRequired": false}}
            }]
        })
        .to_string(),
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let on_track = track("w", "e", "v", "buy", "1");
    send_all(
        &server,
        &[
            on_track.replace("/track", "/event"),
            on_track.clone(),
            on_track.replace("/track", "/my_tracking_endpoint"),
            track("w", "e", "v", "buy", "2").replace("/track", "/my_tracking_endpoint"),
        ],
    )
    .await;
    assert_eq!(server.counts("w").await.values().sum::<u64>(), 2);
}

/// With a 2-second window a duplicate inside is ignored; after it, it counts.
#[tokio::test]
async fn expiry_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--uuid-expiry-seconds", "2"]);
    // A goal, so that the count shows in Lamed's shape.
    let path = track("x", "e", "v", "buy", "same");
    send_all(&server, &[path.clone(), path.clone()]).await;
    assert_eq!(server.counts("x").await.values().sum::<u64>(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    send_all(&server, &[path.clone(), path]).await;
    assert_eq!(server.counts("x").await.values().sum::<u64>(), 2);
}

/// A restart keeps the counts, the remembered uuids and the generated key;
/// SIGTERM exits 0.
#[tokio::test]
async fn restart_keeps_counts_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let first_key = server.api_key.clone();
    assert_eq!(first_key.len(), 40);
    // Generated just now: the only time the banner prints the key.
    assert!(
        server
            .banner
            .contains(&format!("API key:         {first_key} (generated now")),
        "{}",
        server.banner
    );
    send_all(
        &server,
        &[
            track("r", "e", "v", "participate", "1"),
            track("r", "e", "v", "buy", "1"),
        ],
    )
    .await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");

    let server = Server::start(&data, &[]);
    assert_eq!(server.api_key, first_key);
    let stored_at = format!(
        "API key:         stored in {}",
        data.join("api_key").display()
    );
    assert!(server.banner.contains(&stored_at), "{}", server.banner);
    assert!(!server.banner.contains(&first_key), "{}", server.banner);
    send_all(&server, &[track("r", "e", "v", "participate", "1")]).await;
    let counts = server.counts("r").await;
    assert_eq!(counts.values().sum::<u64>(), 2, "{counts:?}");
    let health = server.get("/health").await;
    assert_eq!(
        (health.status, health.json().unwrap()["status"].clone()),
        (200, json!("ok"))
    );
}

/// The printed snippet holds the tracking URL and a LamedAdapter; a
/// configured key is referred to, never printed.
#[tokio::test]
async fn banner_prints_urls_key_and_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--api-key", "0123456789abcdef-key"],
    );
    let base = format!("http://{}", server.addr);
    assert!(server
        .banner
        .contains(&format!("tracking URL:    {base}/track")));
    assert!(server
        .banner
        .contains(&format!("experiments URL: {base}/experiments")));
    assert_eq!(server.api_key, "0123456789abcdef-key");
    assert!(
        !server.banner.contains("0123456789abcdef-key"),
        "{}",
        server.banner
    );
    assert!(
        server
            .banner
            .contains("API key:         from the configuration"),
        "{}",
        server.banner
    );
    assert!(server.banner.contains(&format!(
        "new AlephBet.AlephbetAdapter(\"{base}/track\", \"alephbet\")"
    )));
    assert!(server
        .banner
        .contains("alephbet@0.27.0/dist/alephbet.min.js"));
}

/// When the store cannot take a write (here: another process holds the
/// database's write lock), tracking answers 503 with Retry-After, /health
/// says unavailable (why: only on /metrics), nothing is counted; once the
/// lock is gone the retry counts once.
#[tokio::test]
async fn store_failure_answers_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let event = track("f", "e", "v", "buy", "1");
    let blocker = rusqlite::Connection::open(data.join("lamed.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let answer = server.get(&event).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.headers["retry-after"], "1");
    assert!(answer.json().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("retry"));
    let health = server.get("/health").await;
    assert_eq!(health.status, 503);
    assert_eq!(health.json().unwrap(), json!({"status": "unavailable"}));
    let metrics = server.get_with_key("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("\nlamed_store_healthy 0\n"), "{text}");
    assert!(
        text.contains("lamed_store_health_checks_total{result=\"failed\"}"),
        "{text}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    send_all(&server, &[event.clone(), event]).await;
    assert_eq!(server.counts("f").await.values().sum::<u64>(), 1);
}

/// Stored data that does not parse is no outage: reading it answers 500
/// with a short public message and no Retry-After (a retry would fail
/// alike), counted in `lamed_internal_errors_total`; tracking, which does
/// not read it, still counts. (Here a day's count that is not a number,
/// which the report reads from disk; a corrupt record refuses the store's
/// open, tested in the store.)
#[tokio::test]
async fn corrupt_data_answers_500_not_503() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_logging("127.0.0.1:0", &data, &[], "off");
    send_all(&server, &[track("f", "e", "v", "participate", "1")]).await;
    let db = rusqlite::Connection::open(data.join("lamed.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE daily SET count = 'not a number' WHERE experiment = 'e'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let answer = server
        .get_with_key("/api/experiments/e/report?namespace=f")
        .await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert!(answer.headers.get("retry-after").is_none());
    assert_eq!(
        answer.json().unwrap(),
        json!({"error": "internal error: see the server log"})
    );
    let metrics = server.get_with_key("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("\nlamed_internal_errors_total 1\n"), "{text}");
    send_all(&server, &[track("f", "e", "v", "participate", "2")]).await;
}

/// Dedupe entries older than the window are pruned from disk, so storage
/// stays bounded by the window; counts stay.
#[tokio::test]
async fn expired_dedupe_entries_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--uuid-expiry-seconds", "1"]);
    let paths: Vec<String> = (0..200)
        .map(|i| track("p", "e", "v", "buy", &i.to_string()))
        .collect();
    send_all(&server, &paths).await;
    let remembered = || {
        let db = rusqlite::Connection::open_with_flags(
            data.join("lamed.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        // 16 bytes per remembered hash in the log's rows.
        db.query_row(
            "SELECT coalesce(sum(length(keys)), 0) / 16 FROM seen_log",
            [],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
    };
    assert_eq!(remembered(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while remembered() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} entries left after the window",
            remembered()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(server.counts("p").await.values().sum::<u64>(), 200);
}

/// A request that outlasts `request_timeout_ms` (here: the store waits on
/// another process's write lock) answers 503 with the JSON body,
/// Retry-After and CORS, like any 503; nothing was promised, and once the
/// lock is gone the retry counts once.
#[tokio::test]
async fn timed_out_request_answers_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Well below the store's own wait for the lock (1 s), so the timeout
    // answers first.
    let server = Server::start(&data, &["--request-timeout-ms", "200"]);
    let event = track("t", "e", "v", "buy", "1");
    let blocker = rusqlite::Connection::open(data.join("lamed.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let answer = server
        .request("GET", &event, &[("origin", "https://site.example")], b"")
        .await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert_eq!(
        answer.json().unwrap(),
        json!({"error": "request timed out, retry later"})
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    send_all(&server, &[event.clone(), event]).await;
    assert_eq!(server.counts("t").await.values().sum::<u64>(), 1);
}

/// Request headers over 32 KiB answer 431 and request targets over 60 KiB
/// answer 414, each with a JSON body naming the limit and with CORS; just
/// under the limits (a 16 KiB `scope`, fully percent-encoded) is served.
#[tokio::test]
async fn oversized_heads_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let origin = ("origin", "https://site.example");
    let event = track("h", "e", "v", "buy", "1");
    let refused = |answer: &util::Answer, status: u16, names: &str| {
        assert_eq!(answer.status, status, "{:?}", answer.body);
        assert_eq!(answer.headers["access-control-allow-origin"], "*");
        let error = answer.json().unwrap()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(names), "{error}");
    };

    let big = "c".repeat(40 * 1024);
    let answer = server
        .request("GET", &event, &[origin, ("cookie", &big)], b"")
        .await;
    refused(&answer, 431, "headers of");
    let fits = "c".repeat(16 * 1024);
    let answer = server
        .request("GET", &event, &[origin, ("cookie", &fits)], b"")
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    let long = format!("{event}&pad={}", "p".repeat(62 * 1024));
    let answer = server.request("GET", &long, &[origin], b"").await;
    refused(&answer, 414, "target of");
    let scope = format!("/experiments?namespace=h&scope={}", "%41".repeat(16 * 1024));
    let key = server.api_key.clone();
    let answer = server
        .request("GET", &scope, &[origin, ("x-api-key", &key)], b"")
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    // The refused requests were not counted; the one that fit was.
    assert_eq!(server.counts("h").await.values().sum::<u64>(), 1);
}

/// `/health` answers from the last write check: 50 rapid calls cost at
/// most one write check per second, and `/metrics` shows the check's
/// result and the dedupe memory's size.
#[tokio::test]
async fn health_checks_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    send_all(
        &server,
        &[
            track("h", "e", "v", "participate", "1"),
            track("h", "e", "v", "participate", "2"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let health = server.get("/health").await;
        assert_eq!(
            (health.status, health.json().unwrap()),
            (200, json!({"status": "ok"}))
        );
    }
    let metrics = server.get_with_key("/metrics").await;
    let seconds = started.elapsed().as_secs();
    let text = String::from_utf8_lossy(&metrics.body);
    let checks: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("lamed_store_health_checks_total{result=\"ok\"} "))
        .unwrap_or_else(|| panic!("no check counted: {text}"))
        .parse()
        .unwrap();
    // One check per started second (the /metrics read may add one).
    assert!(
        (1..=seconds + 1).contains(&checks),
        "{checks} checks in {seconds}s"
    );
    assert!(text.contains("\nlamed_store_healthy 1\n"), "{text}");
    assert!(text.contains("\nlamed_dedupe_entries 2\n"), "{text}");
}

/// A batch is refused by count while it is parsed: one event over the
/// limit answers 413, and so does a batch whose elements after the limit
/// are not even JSON (the count comes first).
#[tokio::test]
async fn batches_over_the_limit_are_refused_while_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-batch-events", "3"]);
    let event = |uuid: usize| {
        json!({"namespace": "o", "experiment": "e", "variant": "v", "event": "buy", "uuid": uuid.to_string()})
            .to_string()
    };
    let events: Vec<String> = (0..4).map(event).collect();
    let over = format!("[{}]", events.join(","));
    let broken_after = format!("[{}, {{\"uuid\": oops", events.join(","));
    for body in [over, broken_after] {
        let answer = server.request("POST", "/track", &[], body.as_bytes()).await;
        assert_eq!(answer.status, 413, "{body}: {:?}", answer.body);
        let error = answer.json().unwrap()["error"].as_str().unwrap().to_owned();
        assert!(error.contains("the limit is 3"), "{error}");
    }
    // At the limit the batch is counted; nothing refused was.
    let full = format!("[{}]", events[..3].join(","));
    let answer = server.request("POST", "/track", &[], full.as_bytes()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(server.counts("o").await.values().sum::<u64>(), 3);
}

/// With `--max-in-flight-requests 2` and the store held (another process
/// holds its write lock), requests hold their slots while they wait on it.
/// A client that sends half a head keeps a slot for 50 ms only, so a
/// request sent after that gets it; once the slow head is complete it is
/// read without a slot and, none being free, answered 503 with
/// Retry-After at once. The next request is not read at all: it waits in
/// the kernel (counted on /metrics) and is served once the lock goes.
/// Every 200 is counted and re-sends count once.
#[tokio::test]
async fn past_the_in_flight_limit_requests_wait_unread_or_answer_503() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--max-in-flight-requests", "2"]);
    let events: Vec<String> = (0..4)
        .map(|i| track("l", "e", "v", "buy", &i.to_string()))
        .collect();
    let blocker = rusqlite::Connection::open(data.join("lamed.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let start = Instant::now();
    let at = |ms: u64| tokio::time::sleep_until((start + Duration::from_millis(ms)).into());
    let sent_at = |ms: u64, event: usize| {
        let request = server.get(&events[event]);
        async move {
            at(ms).await;
            let answer = request.await;
            (answer, Instant::now())
        }
    };
    let slow_head = async {
        at(200).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "GET {} HTTP/1.1\r\nhost: x\r\nuser-agent: {}\r\n\
             origin: https://site.example\r\nconnection: close\r\n\r\n",
            events[3],
            util::loadgen::USER_AGENT
        );
        let (begun, rest) = head.as_bytes().split_at(10);
        stream.write_all(begun).await.unwrap();
        at(400).await;
        let finished = Instant::now();
        stream.write_all(rest).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        (answer, finished.elapsed())
    };
    let release = async {
        at(800).await;
        blocker.execute_batch("ROLLBACK").unwrap();
        Instant::now()
    };
    let ((first, _), (second, _), (third, third_at), (slow, took), released_at) = tokio::join!(
        sent_at(0, 0),
        sent_at(300, 1),
        sent_at(500, 2),
        slow_head,
        release
    );
    assert!(slow.starts_with("HTTP/1.1 503"), "{slow}");
    assert!(took < Duration::from_millis(300), "{took:?}");
    let slow = slow.to_ascii_lowercase();
    assert!(slow.contains("retry-after: 1\r\n"), "{slow}");
    assert!(slow.contains("access-control-allow-origin: *"), "{slow}");
    assert!(
        slow.ends_with(r#"{"error":"server busy, retry later"}"#),
        "{slow}"
    );
    assert_eq!(third.status, 200, "{:?}", third.body);
    assert!(
        third_at > released_at,
        "the third was served before a slot freed"
    );
    let metrics = server.get_with_key("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    let waits: u64 = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("lamed_connection_limit_waits_total{limit=\"requests\"} ")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(waits >= 1, "{text}");
    let acknowledged = [&first, &second, &third]
        .iter()
        .filter(|answer| answer.status == 200)
        .count() as u64;
    assert_eq!(server.counts("l").await.values().sum::<u64>(), acknowledged);
    // AlephBet re-sends everything not answered 200; each counts once.
    send_all(&server, &events).await;
    send_all(&server, &events).await;
    assert_eq!(server.counts("l").await.values().sum::<u64>(), 4);
}

/// The dashboard's page and files carry a strict Content-Security-Policy
/// (its own scripts, styles and API only; no framing) and nosniff.
#[tokio::test]
async fn dashboard_is_served_with_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/style.css"] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(
            answer.headers["x-content-type-options"], "nosniff",
            "{path}"
        );
        let policy = answer.headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
    }
}

/// Sends `body` with the API key.
async fn with_key(
    server: &Server,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let answer = server
        .request(
            method,
            path,
            &[("x-api-key", &server.api_key)],
            body.to_string().as_bytes(),
        )
        .await;
    let json = if answer.body.is_empty() {
        serde_json::Value::Null
    } else {
        answer.json().unwrap()
    };
    (answer.status, json)
}

/// The registry over HTTP in required mode: unregistered names are
/// ignored with 200; registering, pausing, stopping with a winner and
/// archiving through the API; forbidden moves answer 409, malformed ones
/// 400, unknown ones 404; every ignored event is counted by reason.
#[tokio::test]
async fn registry_api_and_required_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--registration", "required"]);
    let ignored = |reason: &str| json!({ "ignored": reason });
    let get = |path: String| {
        let server = &server;
        async move { server.get(&path).await.json().unwrap() }
    };
    assert_eq!(
        get(track("shop", "hero", "a", "participate", "1")).await,
        ignored("unregistered")
    );
    let nothing = server.get_with_key("/experiments?namespace=shop").await;
    assert_eq!(nothing.status, 404, "nothing was created");

    let url = "/api/experiments/hero?namespace=shop";
    let definition = json!({"variants": ["a", {"name": "b", "weight": 3}], "goals": ["buy"]});
    let (status, record) = with_key(&server, "PUT", url, definition.clone()).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(
        (record["status"].as_str(), record["control"].as_str()),
        (Some("running"), Some("a"))
    );
    assert_eq!(with_key(&server, "PUT", url, definition).await.0, 200);
    let (status, body) = with_key(
        &server,
        "PUT",
        url,
        json!({"variants": ["a", "c"], "goals": ["buy"]}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("'b'"), "{body}");
    let (status, body) = with_key(&server, "PUT", url, json!({"variants": ["a"]})).await;
    assert_eq!(
        (
            status,
            body["error"].as_str().unwrap().contains("two variants")
        ),
        (400, true)
    );
    let no_key = server.request("PUT", url, &[], b"{}").await;
    assert_eq!(no_key.status, 401);

    assert_eq!(
        get(track("shop", "hero", "a", "participate", "1")).await,
        json!({})
    );
    assert_eq!(
        get(track("shop", "hero", "c", "participate", "2")).await,
        ignored("unregistered")
    );
    let batch = json!([
        {"namespace": "shop", "experiment": "hero", "variant": "b", "event": "buy", "uuid": "3"},
        {"namespace": "shop", "experiment": "hero", "variant": "b", "event": "share", "uuid": "3"},
    ]);
    let answer = server
        .request("POST", "/track", &[], batch.to_string().as_bytes())
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json().unwrap(),
        json!({"counted": 1, "duplicates": 0, "ignored": 1, "refused": 0, "results": [
            {"status": "counted"}, {"status": "ignored", "reason": "unregistered"}]})
    );

    let (status, record) = with_key(&server, "PATCH", url, json!({"status": "paused"})).await;
    assert_eq!((status, record["status"].as_str()), (200, Some("paused")));
    assert_eq!(
        get(track("shop", "hero", "b", "participate", "4")).await,
        ignored("paused")
    );
    let (status, _) = with_key(
        &server,
        "PATCH",
        url,
        json!({"status": "paused", "winner": "b"}),
    )
    .await;
    assert_eq!(status, 400);
    let stop = json!({"status": "stopped", "winner": "b", "note": "clear"});
    let (status, record) = with_key(&server, "PATCH", url, stop).await;
    assert_eq!(
        (status, record["decision"]["winner"].as_str()),
        (200, Some("b"))
    );
    let (status, body) = with_key(&server, "PATCH", url, json!({"status": "running"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        get(track("shop", "hero", "b", "participate", "5")).await,
        ignored("stopped")
    );
    let report = server
        .get_with_key("/api/experiments/hero/report?namespace=shop")
        .await;
    let report = report.json().unwrap();
    assert_eq!(report["record"]["status"], "stopped", "{report}");
    // b's buyer had no participation counted: b shows, with none.
    assert_eq!(
        report["variants"],
        json!([{"label": "a", "participants": 1}, {"label": "b", "participants": 0}])
    );

    assert_eq!(
        with_key(&server, "PATCH", url, json!({"status": "archived"}))
            .await
            .0,
        200
    );
    let listed = |query: &'static str| {
        let server = &server;
        async move {
            let answer = server
                .get_with_key(&format!("/api/experiments?namespace=shop{query}"))
                .await;
            answer.json().unwrap().as_array().unwrap().len()
        }
    };
    assert_eq!((listed("").await, listed("&status=all").await), (0, 1));
    let bad = server
        .get_with_key("/api/experiments?namespace=shop&status=done")
        .await;
    assert_eq!(bad.status, 400);

    let metrics = server.get_with_key("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    for (reason, n) in [("unregistered", 3), ("paused", 1), ("stopped", 1)] {
        let line = format!("lamed_events_ignored_total{{reason=\"{reason}\"}} {n}");
        assert!(text.contains(&line), "{line}\n{text}");
    }
    assert_eq!(with_key(&server, "DELETE", url, json!(null)).await.0, 204);
    let gone = server.get_with_key(url).await;
    assert_eq!(gone.status, 404);
}

/// A record's ETag is its version; `PUT` and `PATCH` answer the new one.
/// An edit whose `If-Match` names a version the record has left answers
/// 412 with the current version and changes nothing; with the current
/// ETag it goes through and the ETag moves; a malformed `If-Match` is a
/// 400 and an unknown experiment stays a 404.
#[tokio::test]
async fn stale_if_match_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let url = "/api/experiments/hero?namespace=shop";
    let key = server.api_key.clone();
    let send = |method: &'static str, if_match: Option<&'static str>, body: serde_json::Value| {
        let (server, key) = (&server, key.clone());
        async move {
            let mut headers = vec![("x-api-key", key.as_str())];
            headers.extend(if_match.map(|tag| ("if-match", tag)));
            let body = if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            };
            server.request(method, url, &headers, &body).await
        }
    };
    let etag = |answer: &util::Answer| {
        answer.headers["etag"]
            .to_str()
            .expect("an ASCII ETag")
            .to_owned()
    };
    let definition = json!({"variants": ["a", "b"], "description": "first"});
    let created = send("PUT", None, definition).await;
    assert_eq!(created.status, 201);
    assert_eq!(etag(&created), "\"1\"");
    assert_eq!(created.json().unwrap()["version"], 1);
    let read = send("GET", None, json!(null)).await;
    assert_eq!((read.status, etag(&read)), (200, "\"1\"".to_owned()));

    // Someone else edits: the record moves to version 2.
    let other = send("PATCH", Some("\"1\""), json!({"description": "theirs"})).await;
    assert_eq!((other.status, etag(&other)), (200, "\"2\"".to_owned()));

    // An edit on what was read before is refused, and changes nothing.
    for (method, body) in [
        ("PATCH", json!({"status": "paused"})),
        ("PUT", json!({"variants": ["a", "b", "c"]})),
    ] {
        let stale = send(method, Some("\"1\""), body).await;
        assert_eq!(stale.status, 412, "{method}: {:?}", stale.body);
        let refusal = stale.json().unwrap();
        assert_eq!(refusal["current_version"], 2, "{refusal}");
        assert!(
            refusal["error"]
                .as_str()
                .unwrap()
                .contains("changed since it was read"),
            "{refusal}"
        );
        assert_eq!(etag(&stale), "\"2\"");
    }
    let unchanged = send("GET", None, json!(null)).await.json().unwrap();
    assert_eq!(
        (
            &unchanged["status"],
            &unchanged["description"],
            unchanged["variants"].as_array().unwrap().len(),
            &unchanged["version"]
        ),
        (&json!("running"), &json!("theirs"), 2, &json!(2))
    );

    // With the current ETag (in a list, or `*`) it goes through.
    let fresh = send("PATCH", Some("\"1\", \"2\""), json!({"status": "paused"})).await;
    assert_eq!((fresh.status, etag(&fresh)), (200, "\"3\"".to_owned()));
    assert_eq!(fresh.json().unwrap()["status"], "paused");
    let any = send("PATCH", Some("*"), json!({"status": "running"})).await;
    assert_eq!((any.status, etag(&any)), (200, "\"4\"".to_owned()));
    assert_eq!(
        etag(&send("GET", None, json!(null)).await),
        "\"4\"",
        "the ETag moved with each write"
    );

    let malformed = send("PATCH", Some("4"), json!({"status": "paused"})).await;
    assert_eq!(malformed.status, 400);
    assert!(String::from_utf8_lossy(&malformed.body).contains("such as"));
    let unknown = server
        .request(
            "PATCH",
            "/api/experiments/nobody?namespace=shop",
            &[("x-api-key", &key), ("if-match", "\"1\"")],
            br#"{"status": "paused"}"#,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        send("GET", None, json!(null)).await.json().unwrap()["status"],
        "running"
    );
}

/// The banner's test event counts once (sent as a browser), while curl's
/// own User-Agent is answered as a bot's, with a hint saying how to test.
#[tokio::test]
async fn the_banners_test_event_counts_and_curl_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let line = server
        .banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("test event:"))
        .expect("the banner shows a test event")
        .trim();
    let quoted: Vec<&str> = line.split('\'').collect();
    let (user_agent, url) = match quoted[..] {
        ["curl -A ", user_agent, " ", url, ""] => (user_agent, url),
        _ => panic!("not a curl command: {line}"),
    };
    let path = url
        .strip_prefix(&format!("http://{}", server.addr))
        .expect("the server's own URL");
    for _ in 0..2 {
        let answer = server
            .request("GET", path, &[("user-agent", user_agent)], b"")
            .await;
        assert_eq!((answer.status, answer.json().unwrap()), (200, json!({})));
    }
    let curl = server
        .request("GET", path, &[("user-agent", "curl/8.5.0")], b"")
        .await;
    let body = curl.json().unwrap();
    assert_eq!((curl.status, &body["ignored"]), (200, &json!("bot")));
    assert!(
        body["hint"].as_str().unwrap().contains("User-Agent"),
        "{body}"
    );
    let report = server
        .get_with_key(&format!(
            "/api/experiments/hello/report?namespace={}",
            lamed::model::DEFAULT_NAMESPACE
        ))
        .await;
    let report = report.json().unwrap();
    assert_eq!(
        report["variants"],
        json!([{"label": "a", "participants": 1}]),
        "{report}"
    );
}
