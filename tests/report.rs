//! The report API over HTTP and `lamed report` in the terminal, on data
//! seeded through the tracking endpoint.

mod util;

use std::process::Command;

use serde_json::Value;
use util::{track, Server};

/// Seeds "button color": red 40 participants / 4 checkouts, blue 40 / 12;
/// "headline" with participants only.
async fn seed(server: &Server) {
    let mut paths = Vec::new();
    for i in 0..40 {
        paths.push(track(
            "shop",
            "button color",
            "red",
            "participate",
            &format!("r{i}"),
        ));
        paths.push(track(
            "shop",
            "button color",
            "blue",
            "participate",
            &format!("b{i}"),
        ));
        if i < 4 {
            paths.push(track(
                "shop",
                "button color",
                "red",
                "checkout",
                &format!("r{i}"),
            ));
        }
        if i < 12 {
            paths.push(track(
                "shop",
                "button color",
                "blue",
                "checkout",
                &format!("b{i}"),
            ));
        }
    }
    paths.push(track("shop", "headline", "long", "participate", "h"));
    for path in paths {
        assert_eq!(server.get(&path).await.status, 200);
    }
}

fn variant<'a>(goal: &'a Value, label: &str) -> &'a Value {
    goal["analysis"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["label"] == label)
        .unwrap()
}

/// The report answers the seeded counts with statistics against the chosen
/// control, a verdict and the daily series.
#[tokio::test]
async fn report_api_on_seeded_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    seed(&server).await;
    let answer = server
        .get_with_key("/api/experiments/button%20color/report?namespace=shop&control=red")
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let report = answer.json().unwrap();
    assert_eq!(report["control"], "red");
    let goal = &report["goals"][0];
    assert_eq!(goal["goal"], "checkout");
    let blue = variant(goal, "blue");
    assert_eq!(
        (blue["trials"].as_u64(), blue["successes"].as_u64()),
        (Some(40), Some(12))
    );
    assert_eq!(blue["rate"].as_f64(), Some(0.3));
    let comparison = &blue["comparison"];
    assert!((comparison["uplift"]["estimate"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    let beat = comparison["chance_to_beat_control"].as_f64().unwrap();
    assert!(beat > 0.95 && beat < 1.0, "{beat}");
    assert!(
        goal["verdict"]
            .as_str()
            .unwrap()
            .starts_with("blue beats red on checkout"),
        "{}",
        goal["verdict"]
    );
    assert_eq!(report["daily"]["days"].as_array().unwrap().len(), 1);
    assert_eq!(report["srm"]["mismatch"], false);
    // Default control: the first variant by name.
    let report = server
        .get_with_key("/api/experiments/button%20color/report?namespace=shop")
        .await
        .json()
        .unwrap();
    assert_eq!(report["control"], "blue");
    // SRM against a declared 90/10 split is flagged.
    let report = server
        .get_with_key(
            "/api/experiments/button%20color/report?namespace=shop&weights=red:90,blue:10",
        )
        .await
        .json()
        .unwrap();
    assert_eq!(report["srm"]["mismatch"], true);
}

/// Wrong key refused; unknown experiment → 404 naming it; bad control →
/// 400 naming the valid variants; bad goal and weights → 400.
#[tokio::test]
async fn report_api_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    seed(&server).await;
    let path = "/api/experiments/button%20color/report?namespace=shop";
    assert_eq!(server.get(path).await.status, 401);
    let wrong = server
        .request("GET", path, &[("x-api-key", "wrong-key-wrong-key")], b"")
        .await;
    assert_eq!(wrong.status, 403);
    let cases = [
        (
            "/api/experiments/nope/report?namespace=shop",
            404,
            "experiment 'nope' not found in namespace 'shop'",
        ),
        (
            "/api/experiments/button%20color/report?namespace=shop&control=green",
            400,
            "valid variants: blue, red",
        ),
        (
            "/api/experiments/button%20color/report?namespace=shop&goal=signup",
            400,
            "valid goals: checkout",
        ),
        (
            "/api/experiments/button%20color/report?namespace=shop&weights=red:1",
            400,
            "no weight for variant 'blue'",
        ),
        (
            "/api/experiments/button%20color/report?namespace=shop&weights=red",
            400,
            "must look like red:80,blue:20",
        ),
        (
            "/api/experiments/%FF/report?namespace=shop",
            400,
            "experiment name in the path",
        ),
    ];
    for (path, status, message) in cases {
        let answer = server.get_with_key(path).await;
        assert_eq!(answer.status, status, "{path}: {:?}", answer.body);
        let error = answer.json().unwrap()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(message), "{path}: {error}");
    }
}

/// The dashboard's files are served by the binary itself, and are small.
#[tokio::test]
async fn dashboard_assets_are_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut total = 0;
    for (path, content_type) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with(content_type));
        total += answer.body.len();
    }
    assert!(total < 200 * 1024, "dashboard first load is {total} bytes");
    assert_eq!(server.get("/dashboard/secret.txt").await.status, 404);
}

/// `lamed report` reads the local store: an aligned table with verdicts,
/// and `--json` with the report API's shape.
#[tokio::test]
async fn report_command_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    seed(&server).await;
    assert!(server.terminate().success());

    let run = |args: &[&str]| {
        Command::new(util::lamed_bin())
            .arg("report")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("LAMED_SERVER")
            .output()
            .expect("run lamed report")
    };
    let out = run(&["--namespace", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = String::from_utf8(out.stdout).unwrap();
    assert!(
        all.contains("headline") && all.contains("no goal completed yet"),
        "{all}"
    );
    let out = run(&["--namespace", "shop", "--control", "red"]);
    assert_eq!(out.status.code(), Some(2), "--control needs an experiment");
    let out = run(&["button color", "--namespace", "shop", "--control", "red"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colours when not a terminal");
    assert!(
        text.contains("button color  (namespace shop, control red)"),
        "{text}"
    );
    assert!(text.contains("blue beats red on checkout"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("blue ") && !l.contains("beats"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], &["blue", "40", "12", "30.00%"], "{row}");
    let header = text
        .lines()
        .find(|l| l.contains("participants  conversions"))
        .unwrap();
    assert_eq!(
        header.find("conversions").map(|i| i + "conversions".len()),
        row.find(" 12").map(|i| i + 3),
        "columns align:\n{header}\n{row}"
    );

    let out = run(&["button color", "--namespace", "shop", "--json"]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["experiment"], "button color");
    assert_eq!(variant(&json["goals"][0], "red")["successes"], 4);

    // By device (issue 26): the tests' desktop browser; 40 a variant, so
    // tested, and one test in the family.
    let out = run(&[
        "button color",
        "--namespace",
        "shop",
        "--control",
        "red",
        "--by",
        "device",
        "--correction",
        "holm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("by device (exploratory: decide on the overall result; p-values corrected with holm across 1 tests)"),
        "{text}"
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.contains("by device"))
        .map(|l| l.split_whitespace().collect())
        .filter(|cells: &Vec<&str>| cells.first().is_some_and(|c| *c == "blue" || *c == "*red"))
        .collect();
    assert_eq!(&rows[0][..4], &["blue", "40", "12", "30.00%"], "{text}");
    assert_eq!(&rows[1][..4], &["*red", "40", "4", "10.00%"], "{text}");
    let out = run(&["button color", "--namespace", "shop", "--by", "os"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown dimension is a usage error"
    );

    let out = run(&["nope", "--namespace", "shop"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "lamed: experiment 'nope' not found"
    );
}

/// `lamed report --server` gives the same analysis through the API.
#[tokio::test]
async fn report_command_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    seed(&server).await;
    let url = format!("http://{}", server.addr);
    let out = tokio::process::Command::new(util::lamed_bin())
        .args([
            "report",
            "button color",
            "--namespace",
            "shop",
            "--json",
            "--server",
            &url,
            "--api-key",
            &server.api_key,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(variant(&json["goals"][0], "blue")["successes"], 12);
    let out = tokio::process::Command::new(util::lamed_bin())
        .args([
            "report",
            "--server",
            &url,
            "--api-key",
            "wrong-key-wrong-key",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid API key"));
}

/// `lamed dashboard` prints the URL and, with no desktop, says so.
#[test]
fn dashboard_command_prints_url() {
    let out = Command::new(util::lamed_bin())
        .args(["dashboard", "--url", "http://127.0.0.1:9/dashboard"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "http://127.0.0.1:9/dashboard"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("open the URL above"));
}
