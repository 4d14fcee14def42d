//! Black-box tests of the command line: help, migrate, and configuration errors.

mod support;

use support::{SECRET_KEY, run_to_completion};

#[test]
fn help_lists_both_commands() {
    let (status, output) = run_to_completion(&["--help"], &[]);
    assert!(status.success());
    assert!(output.contains("serve") && output.contains("migrate"), "{output}");
}

#[test]
fn unknown_arguments_are_refused() {
    let (status, output) = run_to_completion(&["frobnicate"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(output.contains("unrecognised"), "{output}");
}

#[test]
fn invalid_configuration_names_the_setting() {
    let (status, output) =
        run_to_completion(&["serve"], &[("DATABASE_URL", "postgres://x@127.0.0.1:1/x"), ("SECRET_KEY", "short")]);
    assert!(!status.success());
    assert!(output.contains("SECRET_KEY"), "{output}");
    let (status, output) = run_to_completion(
        &["serve"],
        &[("DATABASE_URL", "postgres://x@127.0.0.1:1/x"), ("SECRET_KEY", SECRET_KEY), ("PORT", "http")],
    );
    assert!(!status.success());
    assert!(output.contains("PORT"), "{output}");
    let (status, output) = run_to_completion(
        &["serve"],
        &[("DATABASE_URL", "postgres://x@127.0.0.1:1/x"), ("SECRET_KEY", SECRET_KEY), ("APP_ENV", "production")],
    );
    assert!(!status.success());
    assert!(output.contains("API_KEYS"), "production needs keys: {output}");
    for url in ["postgres://u:hunter2@db:notaport/x", "postgres://db/x?frobnicate=1"] {
        let (status, output) = run_to_completion(&["serve"], &[("DATABASE_URL", url), ("SECRET_KEY", SECRET_KEY)]);
        assert_eq!(status.code(), Some(78), "a configuration error: {output}");
        assert!(output.contains("DATABASE_URL"), "{output}");
        assert!(!output.contains("hunter2"), "{output}");
    }
    for setting in ["REQUEST_BODY_TIMEOUT_SECONDS", "MAX_CONNECTIONS"] {
        let (status, output) = run_to_completion(
            &["serve"],
            &[("DATABASE_URL", "postgres://x@127.0.0.1:1/x"), ("SECRET_KEY", SECRET_KEY), (setting, "0")],
        );
        assert_eq!(status.code(), Some(78), "{output}");
        assert!(output.contains(setting), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_applies_the_schema_and_is_repeatable() {
    let database = rosetta_test_support::test_server().create_database(None).await;
    let env = [("DATABASE_URL", database.url()), ("SECRET_KEY", SECRET_KEY), ("LOG_FORMAT", "text")];
    let (status, first) = run_to_completion(&["migrate"], &env);
    assert!(status.success(), "{first}");
    assert!(first.contains("pending database migration(s)") && first.contains("applied"), "says what it did: {first}");
    let (status, second) = run_to_completion(&["migrate"], &env);
    assert!(status.success(), "{second}");
    assert!(second.contains("already up to date") && !second.contains("applied"), "{second}");
    // Text logs written to a pipe (a file, a collector) carry no colour escapes.
    assert!(!first.contains('\u{1b}') && !second.contains('\u{1b}'), "ANSI escapes in piped logs: {first:?}");
    let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    let row = client.query_one("SELECT count(*) FROM sources", &[]).await.expect("sources table exists");
    assert_eq!(row.get::<_, i64>(0), 0);
}
