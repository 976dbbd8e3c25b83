//! The `formaops` binary: `serve` (default), `migrate`, `users create`, `experiment run`.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use formaops_http::config::{Config, DbArgs, LogFormat, ServeArgs};
use formaops_http::server;
use tracing_subscriber::EnvFilter;

/// FormaOps: prompt operations server.
#[derive(Debug, Parser)]
#[command(name = "formaops", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    /// `serve` flags, when no subcommand is given.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the REST server (the default).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run experiments on a FormaOps server (a client of its REST API).
    #[command(subcommand)]
    Experiment(ExperimentCommand),
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Run versions (or labels) of a prompt over a dataset with a live progress bar, then
    /// print the comparison (`--json` for scripts). Ctrl-C cancels the experiment.
    Run(formaops_http::cli::ExperimentRunArgs),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user. The password is read from stdin or an environment variable, never
    /// from the command line.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (first line).
        #[arg(long, conflicts_with = "password_env")]
        password_stdin: bool,
        /// Read the password from this environment variable.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn read_password(stdin: bool, env: Option<&str>) -> anyhow::Result<String> {
    let password = match (stdin, env) {
        (true, _) => {
            let mut s = String::new();
            std::io::stdin()
                .take(formaops_http::auth::MAX_PASSWORD_BYTES as u64 + 2)
                .read_to_string(&mut s)
                .context("reading the password from stdin")?;
            s.lines().next().unwrap_or_default().to_string()
        }
        (false, Some(var)) => {
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?
        }
        (false, None) => anyhow::bail!("give the password with --password-stdin or --password-env VAR"),
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => server::serve(Config::resolve(&cli.db, &cli.serve)?).await,
        Some(Command::Serve(args)) => server::serve(Config::resolve(&cli.db, &args)?).await,
        Some(Command::Migrate) => {
            let config = Config::resolve(&cli.db, &ServeArgs::default())?;
            server::migrate(&config.database_url).await?;
            eprintln!("database schema is up to date");
            Ok(())
        }
        Some(Command::Experiment(ExperimentCommand::Run(args))) => {
            formaops_http::cli::run_experiment(args).await
        }
        Some(Command::Users(UsersCommand::Create { email, password_stdin, password_env, admin })) => {
            let config = Config::resolve(&cli.db, &ServeArgs::default())?;
            let password = read_password(password_stdin, password_env.as_deref())?;
            let store = server::open_store(&config.database_url, config.store_options()).await?;
            let user =
                formaops_core::user::account::create_user(store.as_ref(), &email, &password, admin).await?;
            println!("{}", user.id);
            eprintln!("created user {} ({})", user.email, if admin { "admin" } else { "user" });
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.db.log_format.unwrap_or_default());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
