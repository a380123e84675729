//! What each CLI command does; `main.rs` only parses arguments.

use std::time::Duration;

use anyhow::{Context, bail};
use entity::person;
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::auth::{JwtKey, Role, issue_token};
use crate::config::{Config, Secret};
use crate::db::Db;
use crate::service::crm;
use crate::service::email::{Mailer, spawn_delivery};
use crate::service::links::UnsubscribeLinks;
use crate::service::suppression::Suppression;
use crate::{AppState, Settings, graphql, service};

/// People `serve --demo` seeds into an empty database.
const DEMO_PEOPLE: u64 = 25;
/// How often the delivery worker looks for due emails.
const EMAIL_DELIVERY_EVERY: Duration = Duration::from_secs(5);
/// On SIGTERM, how long past the request timeout in-flight responses (a
/// streamed export) may take to finish.
const SHUTDOWN_EXTRA_GRACE: Duration = Duration::from_secs(10);
/// How long commands keep retrying a database that cannot be reached.
const DB_STARTUP_WAIT: Duration = Duration::from_secs(120);
/// How long the tokens `serve --demo` prints stay valid.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Connects and migrates. A database that is not reachable yet (starting
/// up, failing over) is retried with exponential backoff for up to
/// [`DB_STARTUP_WAIT`], each failure logged with its cause.
async fn connect(config: &Config) -> anyhow::Result<Db> {
    let url = redact_url(&config.database_url);
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    let db = loop {
        match Db::connect(&config.database_url).await {
            Ok(db) => break db,
            Err(e) if started.elapsed() + delay < DB_STARTUP_WAIT => {
                tracing::error!(database = %url, error = %e, retry_in = ?delay, "cannot connect to the database; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot connect to the database at {url} (gave up after {}s)",
                    started.elapsed().as_secs()
                )));
            }
        }
    };
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

/// The URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `consentry serve [--demo]`: migrate, then serve until Ctrl-C or SIGTERM.
pub async fn serve(config: &Config, demo: bool) -> anyhow::Result<()> {
    let jwt = config.jwt(demo)?;
    let unsubscribe_secret = match (&config.unsubscribe_secret, demo) {
        (Some(s), _) => s.clone(),
        (None, true) => Secret::random()?,
        (None, false) => {
            bail!(
                "no unsubscribe secret configured: set CONSENTRY_UNSUBSCRIBE_SECRET (or run with --demo)"
            )
        }
    };
    let salesforce = config.salesforce()?;
    let mailer = config
        .smtp_url
        .as_deref()
        .map(|url| Mailer::new(url, &config.email_from))
        .transpose()
        .context("CONSENTRY_SMTP_URL or CONSENTRY_EMAIL_FROM is not valid")?;
    let db = connect(config).await?;
    if cfg!(feature = "bench-unchained-audit") {
        tracing::warn!(
            "built with bench-unchained-audit: audit events are not chained (benchmark only)"
        );
    } else {
        // Events a stopped process committed but did not get to chain.
        crate::audit::chain_committed(&db)
            .await
            .map_err(|e| anyhow::anyhow!("cannot chain committed audit events: {e:?}"))?;
    }
    if demo {
        if person::Entity::find().count(db.conn()).await? == 0 {
            service::seed::seed(&db, DEMO_PEOPLE).await?;
        }
        println!(
            "consentry demo: GraphiQL at http://{}/graphql",
            config.listen
        );
        println!(
            "Paste one of these into GraphiQL's headers as {{\"Authorization\": \"Bearer <token>\"}}:"
        );
        if matches!(jwt.key, JwtKey::Secret(_)) {
            for role in Role::ALL {
                let token = issue_token(&jwt, &format!("demo-{role}"), &[role], DEMO_TOKEN_TTL)?;
                println!("  {:<10} {token}", role.as_str());
            }
        }
    }
    if let Some(mailer) = mailer {
        spawn_delivery(db.clone(), mailer, EMAIL_DELIVERY_EVERY);
    } else {
        tracing::info!("no CONSENTRY_SMTP_URL: emails stay in the outbox as QUEUED");
    }
    if let (Some(sf), Some(every)) = (&salesforce, config.crm_sync_interval) {
        crm::spawn_periodic(db.clone(), sf.clone(), every);
    }
    let settings = Settings {
        jwt,
        limits: config.limits(),
        max_body_bytes: config.max_body_bytes,
        max_import_bytes: config.max_import_bytes,
        cors_origins: config.cors_origins.clone(),
        max_in_flight: config.max_in_flight,
        request_timeout: config.request_timeout,
        links: UnsubscribeLinks::new(unsubscribe_secret.clone(), &config.public_url()),
        suppression: Suppression::new(unsubscribe_secret),
        salesforce,
    };
    let chaining = db.clone();
    let state = AppState::new(db, &settings);
    let keys = state.verifier.load().await?;
    tracing::info!(keys, "bearer-token keys loaded");
    let app = crate::router(state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "consentry serving /graphql");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result?,
        () = shutdown_signal() => {
            // Stop accepting; give in-flight requests (at most one request
            // timeout, plus streaming bodies) time to finish.
            let _ = stop.send(true);
            let grace = config.request_timeout + SHUTDOWN_EXTRA_GRACE;
            match tokio::time::timeout(grace, server).await {
                Ok(result) => result?,
                Err(_) => tracing::warn!(?grace, "requests still running after the grace period; exiting"),
            }
        }
    }
    if cfg!(not(feature = "bench-unchained-audit")) {
        // The last requests' events, so none waits for the next start.
        if let Err(e) = crate::audit::chain_pending(&chaining).await {
            tracing::error!(error = %e, "committed audit events could not be chained before stopping");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `consentry migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    connect(config).await?;
    println!("database is up to date");
    Ok(())
}

/// `consentry token`: prints an HS256 token.
pub fn token(config: &Config, subject: &str, roles: &[Role], ttl: Duration) -> anyhow::Result<()> {
    let jwt = match &config.jwt_secret {
        Some(_) => config.jwt(false)?,
        None => bail!("set CONSENTRY_JWT_SECRET (the secret the server verifies tokens with)"),
    };
    println!("{}", issue_token(&jwt, subject, roles, ttl)?);
    Ok(())
}

/// `consentry schema`: prints the SDL.
pub fn schema(config: &Config) {
    print!("{}", graphql::Executor::new(&config.limits()).sdl());
}

/// `consentry verify-audit`: recomputes the chain; `Ok(false)` when broken.
pub async fn verify_audit(config: &Config) -> anyhow::Result<bool> {
    let db = Db::connect(&config.database_url).await?;
    let v = crate::audit::verify(&db)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "{}",
        serde_json::json!({
            "valid": v.valid,
            "checkedEvents": v.checked_events,
            "firstInvalidSequence": v.first_invalid_sequence,
            "headHash": v.head_hash,
        })
    );
    Ok(v.valid)
}

/// `consentry sync-crm`: one sync run; `Ok(false)` when it hit an error.
pub async fn sync_crm(config: &Config) -> anyhow::Result<bool> {
    let sf = config.salesforce()?;
    let db = connect(config).await?;
    let caller = crate::auth::Caller::new(crate::auth::Actor::new("consentry-cli", [Role::Admin]));
    let r = crm::sync_crm(&db, &caller, sf.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chain_before_exit(&db).await?;
    println!(
        "{}",
        serde_json::json!({
            "pulled": r.pulled, "pushed": r.pushed, "conflicts": r.conflicts,
            "errors": r.errors, "error": r.error, "conflictPersonIds": r.conflict_person_ids,
        })
    );
    Ok(r.errors == 0)
}

/// Chains the events a command wrote (they are chained in the background,
/// which ends with the process).
async fn chain_before_exit(db: &Db) -> anyhow::Result<()> {
    crate::audit::chain_pending(db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot chain the audit events written: {e:?}"))
}

/// `consentry seed --people N`.
pub async fn seed(config: &Config, people: u64) -> anyhow::Result<()> {
    let db = connect(config).await?;
    let started = std::time::Instant::now();
    let n = service::seed::seed(&db, people)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chain_before_exit(&db).await?;
    println!(
        "seeded {n} people in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_password_is_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
