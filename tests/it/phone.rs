//! The web phone in a real browser: Debian's chromium, driven over WebDriver by its
//! chromedriver, against the whole application as `serve --demo` runs it. A person's
//! clicks on the keypad walk a balance and a send-money journey; the test reads the
//! screen, the meter, the map and the SMS pane, and keeps a screenshot.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::app::Application;
use ussd_gateway::config::Settings;
use ussd_gateway::money::DEMO_PIN;

use crate::common::{database_url, redis_url, settings};

/// WebDriver's name for an element reference in its answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver of this test's own, killed when dropped with the browser it started
/// (known by its profile folder: a failed test closes no window).
struct Driver {
    child: Child,
    url: String,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill").arg("-KILL").arg("-f").arg(&self.profile).status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Driver {
    async fn start(http: &reqwest::Client) -> Driver {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        // A port nobody holds now; chromedriver takes no port 0.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{program}` ({e}): the web phone is tested in a real browser. \
                     Install it with `apt-get install chromium chromium-driver` (.ci/run does), \
                     or point CHROMEDRIVER at one"
                )
            });
        let profile = std::env::temp_dir().join(format!("ussd-phone-test-{:016x}", rand::random::<u64>()));
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), profile };
        let ready = || async {
            let status = http.get(format!("{}/status", driver.url)).send().await.ok()?;
            let status: Value = serde_json::from_str(&status.text().await.ok()?).ok()?;
            status["value"]["ready"].as_bool().filter(|ready| *ready)
        };
        for _ in 0..200 {
            if ready().await.is_some() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not become ready within 10 s");
    }
}

/// Sends a WebDriver command (reqwest here speaks no JSON of its own) and reads its answer.
async fn json_of(request: reqwest::RequestBuilder, body: Option<Value>) -> Value {
    let request = match body {
        Some(body) => request.header("content-type", "application/json").body(body.to_string()),
        None => request,
    };
    let text = request.send().await.expect("chromedriver answers").text().await.expect("a whole answer");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("chromedriver answered {text:?}: {e}"))
}

/// One headless browser window, closed when the test ends.
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Driver,
}

impl Browser {
    async fn open() -> Browser {
        // A command that hangs fails the test instead of holding it.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let driver = Driver::start(&http).await;
        let profile = format!("--user-data-dir={}", driver.profile.display());
        let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", &profile];
        let mut options = json!({ "args": args });
        if let Ok(binary) = std::env::var("CHROME_BIN") {
            options["binary"] = json!(binary);
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": { "browser": "ALL" },
        } } });
        let created = json_of(http.post(format!("{}/session", driver.url)), Some(capabilities)).await;
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no browser: {created}"))
            .to_owned();
        Browser { http, session: format!("{}/session/{session}", driver.url), _driver: driver }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let answer = json_of(self.http.request(method, format!("{}{path}", self.session)), body).await;
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` in the page (its body: `return …`) and answers what it returned.
    async fn run(&self, script: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": [] })))
            .await
    }

    async fn click(&self, css: &str) {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        let id = found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_owned();
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    async fn text(&self, css: &str) -> String {
        let script = format!("return document.querySelector({css:?})?.textContent ?? null");
        match self.run(&script).await {
            Value::String(text) => text,
            other => panic!("no element {css}: {other}"),
        }
    }

    /// Presses each key of `keys` on the phone's keypad, as a person's clicks.
    async fn press(&self, keys: &str) {
        for key in keys.chars() {
            self.click(&format!("#keypad button[data-key=\"{key}\"]")).await;
        }
    }

    /// Waits up to 20 s for the text of `css` to hold `wanted`, for what the page does
    /// on its own after an answer (a poll, a fetch); the text it ended with.
    async fn until_text(&self, css: &str, wanted: &str) -> String {
        let mut text = String::new();
        for _ in 0..400 {
            text = self.text(css).await;
            if text.contains(wanted) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never showed {wanted:?} within 20 s; it shows {text:?}");
    }

    /// Dials or answers with `keys` and Call, and waits for the page to have the reply.
    async fn answer(&self, keys: &str, wanted: &str) -> String {
        const HOPS: &str = "return document.querySelector('#phone').dataset.hops ?? '0'";
        let before = self.run(HOPS).await;
        self.press(keys).await;
        self.click("#call").await;
        for _ in 0..400 {
            if self.run(HOPS).await != before {
                return self.until_text("#screen", wanted).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no screen came back within 20 s for {keys:?}");
    }

    /// Presses End on a running session: the page closes it and is idle, with nothing
    /// refused.
    async fn hang_up(&self) {
        self.click("#hangup").await;
        self.until_text("#mode", "idle").await;
        let history = self.text("#history").await;
        assert!(history.ends_with("Hung up"), "{history}");
        assert_eq!(self.text("#status").await, "", "the close was taken");
    }

    async fn lit(&self) -> Value {
        self.run("return document.querySelector('#map .node.current')?.dataset.screen ?? null").await
    }
}

impl Browser {
    /// Closes the window (chromedriver's own end, when the driver is killed, would
    /// leave the browser behind).
    async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

const ROOT: &str = "phone-test-root-token-0123456789abcdef";

/// The application as `serve --demo [--simulator]` runs it, on ports of its own.
async fn serve(pool: &PgPool, simulator: bool) -> (Application, tokio_util::sync::CancellationToken) {
    let settings = Settings {
        database_url: database_url(pool).into(),
        listen_addr: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        redis_url: Some(redis_url().into()),
        redis_key_prefix: format!("test:{:016x}:", rand::random::<u64>()),
        admin_token: Some(ROOT.into()),
        ..settings()
    };
    let mut config = settings.validate(None, true).expect("a demo configuration");
    config.simulator = simulator;
    let app = Application::build(config).await.expect("the application builds");
    let stop = app.stop_token();
    (app, stop)
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_person_walks_balance_and_send_money_on_the_web_phone(pool: PgPool) {
    let (app, stop) = serve(&pool, false).await;
    let (addr, admin) = (app.addr(), app.admin_addr());
    let running = tokio::spawn(app.run_until_stopped());
    // Without --simulator the admin listener has no phone.
    let http = reqwest::Client::new();
    let page = http.get(format!("http://{admin}/phone")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let off =
        http.get(format!("http://{admin}/admin/simulator/menus")).bearer_auth(ROOT).send().await.unwrap();
    assert_eq!(off.status(), 404);
    assert!(off.text().await.unwrap().contains("serve --simulator"));

    let browser = Browser::open().await;
    browser.go(&format!("http://{addr}/phone")).await;
    let codes = browser.until_text("#codes", "*384# wallet").await;
    assert!(codes.contains("*385# agent"), "every served menu is listed: {codes}");
    assert_eq!(browser.text("#pin").await, DEMO_PIN);

    // Dial the wallet: the main menu, its cost against the budget, its screen lit.
    let main = browser.answer("*384#", "Welcome Amina").await;
    assert!(main.contains("2. My balance"), "{main}");
    let units = browser.text("#units").await;
    let (used, rest) = units.split_once('/').unwrap_or_else(|| panic!("the meter reads {units:?}"));
    let (budget, encoding) = rest.split_once(' ').unwrap();
    assert_eq!(
        used.parse::<usize>().unwrap(),
        main.len(),
        "the main menu is plain GSM-7: one septet a letter"
    );
    assert_eq!((budget, encoding), ("160", "GSM-7"));
    assert_eq!(browser.lit().await, json!("main"));
    assert_eq!(browser.text("#mapname").await, "wallet (*384#)");

    // Balance: the PIN is masked as it is typed, and the journey ends with the balance.
    browser.answer("2", "PIN").await;
    assert!(browser.text("#mode").await.starts_with("CON"));
    browser.press(DEMO_PIN).await;
    assert_eq!(browser.text("#entry").await, "•".repeat(DEMO_PIN.len()), "a PIN never shows");
    let balance = browser.answer("", "KES").await;
    assert!(balance.contains("KES 1,000.00"), "Amina's opening balance: {balance}");
    assert!(browser.text("#mode").await.starts_with("END"));
    let history = browser.text("#history").await;
    assert!(!history.contains(DEMO_PIN), "the history masks the PIN: {history}");
    assert!(history.contains("Sent ••••"), "{history}");

    // Call after END dials the same code again; End hangs up; a key when idle starts
    // a new dial.
    browser.answer("", "Welcome Amina").await;
    browser.hang_up().await;
    // Send money.
    browser.answer("*384#", "Welcome Amina").await;
    browser.answer("1", "phone number").await;
    browser.answer("0700000002", "amount").await;
    assert_eq!(browser.lit().await, json!("send_amount"), "the map follows the session");
    let past = browser
        .run("return [...document.querySelectorAll('#map .node.past')].map(n => n.dataset.screen)")
        .await;
    assert!(past.as_array().is_some_and(|p| p.contains(&json!("main"))), "the way here is marked: {past}");
    browser.answer("500", "Brian").await;
    browser.answer("1", "PIN").await;
    let sent = browser.answer(DEMO_PIN, "Sent").await;
    assert!(sent.contains("KES 500.00") && sent.contains("Brian"), "{sent}");
    assert_eq!(browser.text("#dialled").await, "Dialled *384# › 1 › 0700000002 › 500 › 1 › ••••");

    // The sender's receipt reaches the SMS pane through the outbox and the demo sink.
    let inbox = browser.until_text("#sms", "KES 500.00").await;
    assert!(!inbox.contains("No SMS yet"), "{inbox}");
    // Another number's pane: Brian's receipt.
    browser
        .run("const n = document.querySelector('#msisdn'); n.value = '+254700000002'; n.dispatchEvent(new Event('change')); return true")
        .await;
    let brian = browser.until_text("#sms", "Amina").await;
    assert!(brian.contains("KES 500.00"), "{brian}");

    // The page said nothing to the console: no script error, no failed fetch.
    let logs = browser.command(reqwest::Method::POST, "/se/log", Some(json!({ "type": "browser" }))).await;
    let severe: Vec<&Value> =
        logs.as_array().into_iter().flatten().filter(|entry| entry["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "the page logged errors: {severe:?}");

    // What the page reads of a session answers a malformed number with its reason, and
    // a session it does not know with no screen.
    let state = |query: &'static str| http.get(format!("http://{addr}/phone/state?{query}")).send();
    let refused = state("msisdn=abc&session=x").await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().starts_with("msisdn: "));
    let unknown = state("msisdn=%2B254700000001&session=never-dialled").await.unwrap().text().await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&unknown).unwrap()["screen"], Value::Null, "{unknown}");

    let shot = browser.command(reqwest::Method::GET, "/screenshot", None).await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().expect("a screenshot")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a picture of the page: {} bytes", png.len());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-phone.png");
    std::fs::write(&path, &png).unwrap();

    browser.close().await;
    stop.cancel();
    running.await.expect("it did not panic").expect("it stopped cleanly");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_simulator_serves_the_phone_on_the_admin_listener_behind_a_token(pool: PgPool) {
    let (app, stop) = serve(&pool, true).await;
    let (app_addr, admin) = (app.addr(), app.admin_addr());
    let running = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let menus = http.get(format!("http://{admin}/admin/simulator/menus")).send().await.unwrap();
    assert_eq!(menus.status(), 401, "no token, no simulator");

    let browser = Browser::open().await;
    browser.go(&format!("http://{admin}/phone")).await;
    assert_eq!(browser.run("return document.querySelector('#tokenbox').hidden").await, json!(false));
    browser
        .run(&format!(
            "const t = document.querySelector('#token'); t.value = '{ROOT}'; t.dispatchEvent(new Event('change')); return true"
        ))
        .await;
    browser.until_text("#codes", "*384# wallet").await;
    browser.answer("*384#", "Welcome Amina").await;
    assert_eq!(browser.lit().await, json!("main"));
    browser.answer("2", "PIN").await;
    let balance = browser.answer(DEMO_PIN, "KES").await;
    assert!(balance.contains("KES 1,000.00"), "{balance}");
    assert_eq!(browser.lit().await, json!("balance_show"), "the map follows the simulator's session");
    assert!(browser.text("#sms").await.contains("configured provider"));
    browser.answer("", "Welcome Amina").await;
    browser.hang_up().await;
    let logs = browser.command(reqwest::Method::POST, "/se/log", Some(json!({ "type": "browser" }))).await;
    assert!(!logs.to_string().contains("SEVERE"), "the page logged errors: {logs}");
    browser.close().await;

    // Every hop is in the audit trail under the token, with the number, never the PIN.
    let hops: Vec<(String, Option<String>, Option<Value>)> = sqlx::query_as(
        "SELECT token_name, target, detail FROM admin_audit WHERE route = '/admin/simulator/hop' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(hops.len(), 5, "start, 2, the PIN, start again, close: {hops:?}");
    assert!(hops.iter().all(|(_, target, _)| target.as_deref() == Some("+254700000001")), "{hops:?}");
    let events: Vec<&Value> =
        hops.iter().filter_map(|(_, _, detail)| detail.as_ref()).map(|d| &d["event"]).collect();
    assert_eq!(events, [&json!("start"), &json!("input"), &json!("input"), &json!("start"), &json!("close")]);
    assert!(
        hops.iter().all(|(_, _, detail)| detail.as_ref().is_some_and(|d| d.get("input").is_none())),
        "what was typed is never in the trail: {hops:?}"
    );

    // A transfer the operator left half-made is offered back to the simulator alone,
    // never to the subscriber's own phone.
    let simulated = |body: Value| {
        http.post(format!("http://{admin}/admin/simulator/hop"))
            .bearer_auth(ROOT)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let said = |session: &'static str, event: &'static str, more: Value| {
        let mut body = json!({ "session_id": session, "msisdn": "+254700000001", "event": event });
        body.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        let sent = simulated(body);
        async move {
            let answer = sent.await.unwrap();
            assert_eq!(answer.status(), 200);
            let answer: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
            answer["message"].as_str().unwrap_or_default().to_owned()
        }
    };
    said("left", "start", json!({ "service_code": "*384#" })).await;
    said("left", "input", json!({ "input": "1" })).await;
    let amount = said("left", "input", json!({ "input": "0700000002" })).await;
    assert!(amount.contains("amount"), "{amount}");
    said("left", "close", json!({ "reason": "aborted" })).await;
    let own = http
        .post(format!("http://{}/ussd/generic", app_addr))
        .header("content-type", "application/json")
        .body(json!({ "session_id": "own", "msisdn": "+254700000001", "event": "start", "service_code": "*384#" }).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        own.contains("Welcome Amina") && !own.contains("cut off"),
        "the subscriber is offered nothing: {own}"
    );
    let again = said("again", "start", json!({ "service_code": "*384#" })).await;
    assert!(again.contains("cut off"), "the simulator is offered its own: {again}");

    stop.cancel();
    running.await.expect("it did not panic").expect("it stopped cleanly");
}
