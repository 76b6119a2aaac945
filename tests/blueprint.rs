//! The Render blueprint: everything a first deploy needs is in render.yaml,
//! so the deploy is one click and never a shell session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use yaml_rust2::{Yaml, YamlLoader};

fn blueprint() -> Yaml {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/render.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn env_var<'a>(service: &'a Yaml, key: &str) -> &'a Yaml {
    service["envVars"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["key"].as_str() == Some(key))
        .unwrap_or_else(|| panic!("render.yaml sets no {key}"))
}

#[test]
fn the_web_service_builds_fetches_the_model_and_serves() {
    let doc = blueprint();
    let web = &doc["services"][0];
    assert_eq!(web["type"].as_str(), Some("web"));
    assert_eq!(
        web["runtime"].as_str(),
        Some("rust"),
        "Render's native Rust runtime"
    );
    let build = web["buildCommand"].as_str().unwrap();
    let release = build
        .find("cargo build --release")
        .expect("a release build");
    let fetch = build
        .find("chatter model fetch")
        .expect("the model is fetched during the build");
    assert!(
        release < fetch,
        "build first, then fetch the model with the built binary"
    );
    assert_eq!(
        web["startCommand"].as_str(),
        Some("./target/release/chatter serve")
    );
    assert_eq!(web["healthCheckPath"].as_str(), Some("/healthz"));
    assert!(
        web["maxShutdownDelaySeconds"]
            .as_i64()
            .is_some_and(|s| s >= 25),
        "room for the graceful stop"
    );

    let database_url = env_var(web, "DATABASE_URL");
    assert_eq!(
        database_url["fromDatabase"]["name"].as_str(),
        Some("chatter-db")
    );
    assert_eq!(
        database_url["fromDatabase"]["property"].as_str(),
        Some("connectionString")
    );
    assert_eq!(
        env_var(web, "SECRET_KEY")["generateValue"].as_bool(),
        Some(true)
    );
    assert_eq!(env_var(web, "DEBUG")["value"].as_str(), Some("False"));
    assert_eq!(
        env_var(web, "CHATTER_TRUST_PROXY")["value"].as_str(),
        Some("true"),
        "behind Render's proxy"
    );
    // The model cache the build fills is the one the service reads: inside
    // the project folder, which Render keeps from build to runtime.
    let hf_home = env_var(web, "HF_HOME")["value"].as_str().unwrap();
    assert!(hf_home.starts_with("/opt/render/project/src/"), "{hf_home}");
    assert!(
        build.contains(&format!("HF_HOME={hf_home}")),
        "the build fetches into {hf_home}"
    );
}

#[test]
fn the_database_is_declared_like_the_guide() {
    let doc = blueprint();
    let db = &doc["databases"][0];
    assert_eq!(db["name"].as_str(), Some("chatter-db"));
    assert_eq!(db["databaseName"].as_str(), Some("chatterplatform"));
    assert_eq!(
        db["ipAllowList"].as_vec().map(Vec::len),
        Some(0),
        "internal connections only"
    );
}

/// Render routes to 0.0.0.0:$PORT: the defaults bind all interfaces and PORT wins.
#[test]
fn the_server_binds_all_interfaces_on_port() {
    let env = [("PORT".to_string(), "10000".to_string())]
        .into_iter()
        .collect();
    let settings = chatter::config::Settings::load(
        Some(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.toml"
        ))),
        &env,
    )
    .unwrap();
    assert_eq!(settings.server.host, "0.0.0.0");
    assert_eq!(settings.server.port, 10000);
    // RENDER_EXTERNAL_HOSTNAME is the public tenant's domain and allowed: .onrender.com is in the defaults.
    assert!(
        settings
            .server
            .allowed_hosts
            .iter()
            .any(|h| h == ".onrender.com")
    );
}

/// Sign-up is on for the hosted platform; the SMTP settings are asked for
/// at the first deploy (`sync: false`), never written in the file.
#[test]
fn sign_up_is_on_and_mail_secrets_are_asked_for() {
    let doc = blueprint();
    let web = &doc["services"][0];
    assert_eq!(
        env_var(web, "CHATTER_SIGNUP_ENABLED")["value"].as_str(),
        Some("true")
    );
    for key in [
        "CHATTER_SMTP_HOST",
        "CHATTER_SMTP_USERNAME",
        "CHATTER_SMTP_PASSWORD",
        "CHATTER_SMTP_FROM",
    ] {
        let var = env_var(web, key);
        assert_eq!(var["sync"].as_bool(), Some(false), "{key}");
        assert!(var["value"].is_badvalue(), "{key} has no value in the file");
    }
}

/// Razorpay's secrets are asked for at the first deploy, never committed.
#[test]
fn razorpay_secrets_are_asked_for_never_committed() {
    let doc = blueprint();
    let service = &doc["services"][0];
    for key in [
        "RAZORPAY_KEY_ID",
        "RAZORPAY_KEY_SECRET",
        "RAZORPAY_WEBHOOK_SECRET",
    ] {
        let var = env_var(service, key);
        assert_eq!(var["sync"].as_bool(), Some(false), "{key}");
        assert!(var["value"].is_badvalue(), "{key} has a committed value");
    }
}
