//! The secret keys at work: the cipher from `SECRET_KEYS`, the start-up report of secrets
//! under older keys, and `rosetta-server rotate-secrets [--dry-run]`.

use std::sync::Arc;

use anyhow::Context as _;
use rosetta_ports::outbound::SecretCipher;
use rosetta_postgres_adapter::{
    LEGACY_KEY_LABEL, PostgresStore, RotationScope, SealedCount, SecretRotation, SecretSurvey, StoreSettings,
    XChaChaSecretCipher,
};

use crate::config::Config;

/// The cipher of the configured keys, newest first.
pub fn cipher(config: &Config) -> anyhow::Result<Arc<XChaChaSecretCipher>> {
    let cipher =
        XChaChaSecretCipher::with_keys(&config.secret_keys.expose()).context("deriving the secret-encryption keys")?;
    Ok(Arc::new(cipher))
}

/// Where a count's key stands among the configured ones.
fn standing(count: &SealedCount, key_ids: &[String]) -> &'static str {
    if count.current {
        "newest key"
    } else if count.key == LEGACY_KEY_LABEL {
        "no key id recorded: re-sealed under the newest key"
    } else if key_ids.contains(&count.key) {
        "older key: re-sealed under the newest key"
    } else {
        "key not configured: cannot be read or re-sealed"
    }
}

/// Secrets under keys that are not configured (they stay unreadable).
fn under_missing_keys(survey: &SecretSurvey, key_ids: &[String]) -> u64 {
    survey
        .counts
        .iter()
        .filter(|count| !count.current && count.key != LEGACY_KEY_LABEL && !key_ids.contains(&count.key))
        .map(|count| count.count)
        .sum()
}

/// Secrets sealed before key ids were recorded (format 1): readable by this release and by the
/// ones before it, until `rotate-secrets` re-seals them.
fn without_key_id(survey: &SecretSurvey) -> u64 {
    survey.counts.iter().filter(|count| count.key == LEGACY_KEY_LABEL).map(|count| count.count).sum()
}

/// Logs the configured keys and how many secrets remain under older keys, under keys no longer
/// configured, and without a key id, on a task of its own so the start does not wait for it. It
/// only reads: rewriting a value at start-up (even under the same key) would make it unreadable
/// to the release being rolled back to, so every rewrite is `rotate-secrets`'. A database that
/// does not answer only costs the report.
pub fn report_at_start(store: PostgresStore, cipher: Arc<XChaChaSecretCipher>) {
    let key_ids = cipher.key_ids();
    tracing::info!(newest = %key_ids[0], older = ?&key_ids[1..], "secret keys configured");
    let rotation = SecretRotation::new(store, cipher as Arc<dyn SecretCipher>, SecretRotation::DEFAULT_BATCH);
    tokio::spawn(async move {
        let survey = match rotation.survey().await {
            Ok(survey) => survey,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the stored secrets to report their keys");
                return;
            }
        };
        let missing = under_missing_keys(&survey, &key_ids);
        let legacy = without_key_id(&survey);
        let older = survey.outdated() - missing - legacy;
        if older > 0 {
            tracing::warn!(
                count = older,
                "{older} stored secrets are under older keys; run `rosetta-server rotate-secrets`"
            );
        }
        if legacy > 0 {
            tracing::info!(
                count = legacy,
                "{legacy} stored secrets were sealed before key ids were recorded; they stay readable (also by \
                 earlier releases) until `rosetta-server rotate-secrets` re-seals them with the newest key's id"
            );
        }
        if missing > 0 {
            tracing::warn!(
                count = missing,
                "{missing} stored secrets are under keys that are not configured; their rows report \
                 'its key is not configured' until the key is added back to SECRET_KEYS"
            );
        }
        if older == 0 && missing == 0 && legacy == 0 {
            tracing::info!("every stored secret is under the newest key");
        }
    });
}

/// `rotate-secrets`: prints the secrets per column and key, then (unless `dry_run`) re-seals
/// every one under an older key with the newest. Fails when some cannot be read (their key is
/// not configured, or they do not open), after re-sealing the others.
pub async fn rotate(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let cipher = cipher(config)?;
    let key_ids = cipher.key_ids();
    let store = PostgresStore::new(StoreSettings {
        url: config.database.url.clone(),
        max_size: 2,
        connection_timeout: config.database.pool_timeout,
    })
    .context("building the metadata database pool")?;
    let rotation = SecretRotation::new(store.clone(), cipher as Arc<dyn SecretCipher>, SecretRotation::DEFAULT_BATCH);
    let survey = rotation.survey().await.context("reading the stored secrets")?;
    println!("newest key: {}; older keys: {}", key_ids[0], list(&key_ids[1..]));
    for count in &survey.counts {
        println!("  {:<52} {:>8}  {}  ({})", count.column, count.count, count.key, standing(count, &key_ids));
    }
    let missing = under_missing_keys(&survey, &key_ids);
    let to_reseal = survey.outdated() - missing;
    if dry_run {
        println!("dry run: {to_reseal} secrets would be re-sealed under {}; {missing} cannot be read", key_ids[0]);
        return Ok(());
    }
    let outcome = rotation.rotate(RotationScope::Outdated).await.context("re-sealing the stored secrets")?;
    store.close();
    println!("re-sealed {} secrets under {}", outcome.resealed, key_ids[0]);
    for unreadable in &outcome.unreadable {
        println!("  cannot re-seal {} of row {}: {}", unreadable.column, unreadable.row_id, unreadable.reason);
    }
    if !outcome.unreadable.is_empty() {
        anyhow::bail!(
            "{} secrets cannot be read with the configured keys and were left as they are",
            outcome.unreadable.len()
        );
    }
    Ok(())
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() { "none".to_owned() } else { ids.join(", ") }
}
