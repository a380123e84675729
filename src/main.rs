//! The `consentry` command line: parses arguments and calls the library.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use consentry::auth::Role;
use consentry::commands;
use consentry::config::Config;

/// GDPR-accountable contact database: a GraphQL server with a
/// tamper-evident audit trail.
#[derive(Parser)]
#[command(name = "consentry", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API (the default).
    Serve {
        /// Try it out: random secrets, sample people, one token per role.
        #[arg(long)]
        demo: bool,
    },
    /// Bring the database schema up to date.
    Migrate,
    /// Print a bearer token signed with CONSENTRY_JWT_SECRET.
    Token {
        /// The token's subject (the actor named in audit events).
        #[arg(long)]
        sub: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<RoleArg>,
        /// How long the token is valid, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Recompute the audit hash chain; exit 1 when it does not verify.
    VerifyAudit,
    /// Run one two-way opt-out sync with Salesforce; exit 1 when it fails.
    SyncCrm,
    /// Insert sample people (set-based; for demos and benchmarks).
    Seed {
        /// How many people to insert.
        #[arg(long)]
        people: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Sales,
    Compliance,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Sales => Role::Sales,
            RoleArg::Compliance => Role::Compliance,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = &cli.config;
    let result = match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Serve { demo } => commands::serve(config, demo).await,
        Command::Migrate => commands::migrate(config).await,
        Command::Token { sub, roles, ttl } => {
            let roles: Vec<Role> = roles.into_iter().map(Into::into).collect();
            commands::token(config, &sub, &roles, ttl)
        }
        Command::Schema => {
            commands::schema(config);
            Ok(())
        }
        Command::VerifyAudit => match commands::verify_audit(config).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::SyncCrm => match commands::sync_crm(config).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Seed { people } => commands::seed(config, people).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
