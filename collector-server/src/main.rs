//! `annexa-collector`: the command line of the collector. Argument
//! parsing and dispatch: the commands' bodies are in the library
//! (`annexa_collector::commands`, and `start` for `serve`).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use annexa_collector::commands::{self, CommandError};
use annexa_collector::config::{CollectorConfig, DEFAULT_CONFIG};
use annexa_collector::store::{PersonRole, Role};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// annexa-collector: verifies, logs and stores signed compliance evidence.
#[derive(Debug, Parser)]
#[command(name = "annexa-collector", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Where {
    /// Configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides the configuration's data_dir).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

impl Where {
    fn load(&self) -> anyhow::Result<CollectorConfig> {
        let mut cfg = match &self.config {
            Some(path) => CollectorConfig::load(path, true),
            None => CollectorConfig::load(std::path::Path::new(DEFAULT_CONFIG), false),
        }
        .map_err(anyhow::Error::msg)?;
        if let Some(d) = &self.data {
            cfg.data_dir = d.clone();
        }
        Ok(cfg)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (annexa-collector.1 and one per subcommand)
    /// into DIR.
    #[command(hide = true)]
    Manpages {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// Create the data directory (mode 0700), the receipt-signing key, and a
    /// private CA with a server certificate; print the CA fingerprint agents pin.
    Init {
        #[command(flatten)]
        at: Where,
        /// A name (DNS name or IP address) agents use to reach the collector.
        /// Repeatable; default: localhost, 127.0.0.1, ::1 and this host's name.
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Do not create certificates (tls_cert and tls_key are configured).
        #[arg(long)]
        no_tls: bool,
    },
    /// Serve the API over HTTPS until SIGTERM or SIGINT.
    Serve {
        #[command(flatten)]
        at: Where,
        /// Address to listen on (overrides the configuration's listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// The collector's signing key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Enrollment tokens for agents.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// API tokens for administrators and auditors.
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// People who sign attestations, waivers and actions with their own
    /// keys (docs/security.md, "People").
    Person {
        #[command(subcommand)]
        command: PersonCommand,
    },
    /// Enrolled agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// The Statement of Applicability: lint, import, show, export, diff.
    Soa {
        #[command(subcommand)]
        command: SoaCommand,
    },
    /// The evidence log: the verifier key auditors check it with, its newest
    /// checkpoint, and export of the whole log for `annexa verify log`.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Move the store from the embedded SQLite file to an empty PostgreSQL
    /// database (stop the collector first), then check that the evidence
    /// log has the same size and root on both sides. Point `database_url`
    /// at the database afterwards.
    Migrate {
        #[command(flatten)]
        at: Where,
        /// The source: `sqlite:PATH` (the data directory's collector.db).
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The destination: `postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
        /// an empty database.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Print the checkpoint verifier key (`<origin>+<key id>+<base64 key>`).
    /// Hand it to auditors out of band: `annexa verify log --collector-key`.
    Key {
        #[command(flatten)]
        at: Where,
    },
    /// Print the newest stored checkpoint (a C2SP signed note).
    Checkpoint {
        #[command(flatten)]
        at: Where,
    },
    /// Write the whole log with every envelope, the agents' keys, the
    /// checkpoints and the retention runs to one bundle file (JSON Lines)
    /// that `annexa verify log --bundle` checks offline. Safe while the
    /// collector runs.
    Export {
        #[command(flatten)]
        at: Where,
        /// The bundle file to create (mode 0600).
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Replace the signing key (checkpoints, receipts, reports) with a new
    /// one, with the collector stopped. A transition signed by both keys is
    /// stored: agents adopt the new key by it, and auditors holding either
    /// verifier key follow it. Everything signed before stays verifiable.
    /// Run it again to finish a rotation that was interrupted.
    Rotate {
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new single-use enrollment token.
    Create {
        #[command(flatten)]
        at: Where,
        /// How long the token is valid: 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Label given to the agent that enrolls with it (k=v, repeatable).
        #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Print a new API token.
    Create {
        #[command(flatten)]
        at: Where,
        /// A name for the token's holder (used to revoke it).
        #[arg(long)]
        name: String,
        /// auditor (read-only, the default: least privilege) or admin
        /// (tokens, agents, SoA import, metrics).
        #[arg(long, default_value = "auditor", value_parser = parse_role)]
        role: Role,
        /// Lifetime (default: until revoked).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Revoke every token with this name (effective immediately).
    Revoke {
        #[command(flatten)]
        at: Where,
        /// The token name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// Register a person with the public key `annexa person keygen` printed.
    Add {
        #[command(flatten)]
        at: Where,
        /// Their name.
        #[arg(long)]
        name: String,
        /// Their e-mail: the name their statements are signed with, and how
        /// an SoA `owner` field names them.
        #[arg(long)]
        email: String,
        /// Their Ed25519 public key (standard base64).
        #[arg(long)]
        public_key: String,
        /// owner (attests, requests waivers, opens and closes actions for
        /// the controls the SoA says they own), approver (decides others'
        /// waiver requests), auditor or admin; repeatable.
        #[arg(long = "role", required = true, value_parser = parse_person_role)]
        roles: Vec<PersonRole>,
    },
    /// List people and their keys.
    List {
        #[command(flatten)]
        at: Where,
    },
    /// Revoke a person: nothing they sign is accepted from now on.
    Revoke {
        #[command(flatten)]
        at: Where,
        /// Their e-mail.
        #[arg(long)]
        email: String,
    },
    /// Replace a person's key; the old key is retired.
    RotateKey {
        #[command(flatten)]
        at: Where,
        /// Their e-mail.
        #[arg(long)]
        email: String,
        /// The new public key (standard base64).
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// List enrolled agents.
    List {
        #[command(flatten)]
        at: Where,
    },
    /// Revoke an agent: its evidence is refused from now on.
    Revoke {
        #[command(flatten)]
        at: Where,
        /// The agent id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum SoaCommand {
    /// Check an SoA file (TOML, or CSV by its .csv name) against the catalog
    /// and the check packs; print every problem with its line. Exit 1 if any.
    Lint {
        #[command(flatten)]
        at: Where,
        /// The file.
        file: PathBuf,
        /// toml or csv (default: by the file name).
        #[arg(long)]
        format: Option<String>,
    },
    /// Lint and record an SoA as the next version (a running collector
    /// re-evaluates conformity within its sweep interval).
    Import {
        #[command(flatten)]
        at: Where,
        /// The file.
        file: PathBuf,
        /// toml or csv (default: by the file name).
        #[arg(long)]
        format: Option<String>,
        /// Who imports it (default: the login name).
        #[arg(long)]
        by: Option<String>,
        /// Why this version.
        #[arg(long)]
        comment: Option<String>,
    },
    /// List the imported versions.
    List {
        #[command(flatten)]
        at: Where,
    },
    /// Show a version (default: the newest) with the checks that give
    /// evidence for each control.
    Show {
        #[command(flatten)]
        at: Where,
        /// The version. (Its id is not `version`, which the propagated
        /// `--version` flag takes.)
        #[arg(id = "number", value_name = "VERSION")]
        version: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a version (default: the newest): as imported, or as toml or csv.
    Export {
        #[command(flatten)]
        at: Where,
        /// The version. (Its id is not `version`, which the propagated
        /// `--version` flag takes.)
        #[arg(id = "number", value_name = "VERSION")]
        version: Option<i64>,
        /// source (as imported), toml or csv.
        #[arg(long, default_value = "source")]
        format: String,
    },
    /// What changed between two versions.
    Diff {
        #[command(flatten)]
        at: Where,
        /// The older version.
        from: i64,
        /// The newer version.
        to: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

fn parse_person_role(s: &str) -> Result<PersonRole, String> {
    PersonRole::parse(s)
        .ok_or_else(|| format!("`{s}` is not a person role (owner, approver, auditor, admin)"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("`{s}` is not a role (admin, auditor)"))
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANNEXA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("annexa-collector: error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("annexa-collector: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let printed = match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "annexa-collector",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Serve { at, listen } => {
            let mut cfg = at.load()?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            serve(cfg).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Soa { command } => soa_command(command).await,
        Command::Log { command } => match command {
            LogCommand::Key { at } => commands::log::key(&at.load()?).await,
            LogCommand::Checkpoint { at } => commands::log::checkpoint(&at.load()?).await,
            LogCommand::Export { at, out } => {
                // What was exported is said on stderr: stdout may be the bundle's pipe.
                let said = commands::log::export(&at.load()?, &out).await?;
                eprintln!("{said}");
                return Ok(ExitCode::SUCCESS);
            }
        },
        Command::Migrate { at, from, to } => {
            commands::migrate::migrate(&at.load()?, &from, &to).await
        }
        Command::Init { at, names, no_tls } => {
            commands::admin::init(&at.load()?, names, !no_tls).await
        }
        Command::Key {
            command: KeyCommand::Rotate { at },
        } => commands::admin::rotate_key(&at.load()?).await,
        Command::Token {
            command: TokenCommand::Create { at, ttl, labels },
        } => commands::admin::enroll_token(&at.load()?, &ttl, &labels.into_iter().collect()).await,
        Command::ApiToken { command } => match command {
            ApiTokenCommand::Create {
                at,
                name,
                role,
                ttl,
            } => commands::admin::api_token(&at.load()?, &name, role, ttl.as_deref()).await,
            ApiTokenCommand::Revoke { at, name } => {
                commands::admin::revoke_api_token(&at.load()?, &name).await
            }
        },
        Command::Person { command } => match command {
            PersonCommand::Add {
                at,
                name,
                email,
                public_key,
                roles,
            } => commands::people::add(&at.load()?, &name, &email, &public_key, &roles).await,
            PersonCommand::List { at } => commands::people::list(&at.load()?).await,
            PersonCommand::Revoke { at, email } => {
                commands::people::revoke(&at.load()?, &email).await
            }
            PersonCommand::RotateKey {
                at,
                email,
                public_key,
            } => commands::people::rotate_key(&at.load()?, &email, &public_key).await,
        },
        Command::Agent { command } => match command {
            AgentCommand::List { at } => commands::admin::agents(&at.load()?).await,
            AgentCommand::Revoke { at, id } => {
                commands::admin::revoke_agent(&at.load()?, &id).await
            }
        },
    };
    match printed {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        // Every problem found, as the check wrote it.
        Err(CommandError::Refused(problems)) => {
            eprint!("{problems}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

async fn soa_command(command: SoaCommand) -> Result<String, CommandError> {
    use commands::soa;
    let load = |at: Where| at.load().map_err(|e| CommandError::Usage(format!("{e:#}")));
    match command {
        SoaCommand::Lint { at, file, format } => soa::lint(&load(at)?, &file, format.as_deref()),
        SoaCommand::Import {
            at,
            file,
            format,
            by,
            comment,
        } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            let what = soa::Import {
                file: &file,
                format: format.as_deref(),
                by: &by,
                comment,
            };
            soa::import(&load(at)?, what).await
        }
        SoaCommand::List { at } => soa::list(&load(at)?).await,
        SoaCommand::Show { at, version, json } => soa::show(&load(at)?, version, json).await,
        SoaCommand::Export {
            at,
            version,
            format,
        } => soa::export(&load(at)?, version, &format).await,
        SoaCommand::Diff { at, from, to, json } => soa::diff(&load(at)?, from, to, json).await,
    }
}

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight.
async fn serve(cfg: CollectorConfig) -> anyhow::Result<()> {
    init_logging(&cfg.log_format);
    let server = annexa_collector::start(&cfg).await?;
    tracing::info!(addr = %server.addr, data = %cfg.data_dir.display(), "collector listening (HTTPS)");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    server.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the whole command tree (unique argument ids, among
    /// others) only when a command is parsed in a debug build; this
    /// checks every subcommand at once.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
