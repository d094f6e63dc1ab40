//! `annexa-collector`: the command line of the collector.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use annexa_checks::soa::Format;
use annexa_collector::config::{CollectorConfig, DEFAULT_CONFIG};
use annexa_collector::datadir::{self, DataDir};
use annexa_collector::store::Role;
use annexa_collector::{clock, create_api_token, create_enroll_token, open_store};

/// The log's origin: the one its stored checkpoints carry, else the
/// configured or default one.
async fn log_origin(
    cfg: &CollectorConfig,
    store: &dyn annexa_collector::store::Store,
) -> anyhow::Result<(String, annexa_evidence::keys::SigningKey)> {
    let key = DataDir::new(&cfg.data_dir).load_signing_key()?;
    let stored = annexa_collector::stored_origin(store).await?;
    Ok((stored.unwrap_or_else(|| cfg.origin(&key.public())), key))
}

async fn migrate_command(at: Where, from: &str, to: &str) -> anyhow::Result<()> {
    use annexa_collector::store::{postgres, sqlite};
    let cfg = at.load()?;
    let path = from
        .strip_prefix("sqlite:")
        .with_context(|| format!("--from `{from}` is not sqlite:PATH"))?;
    let path = std::path::Path::new(path);
    // Opening creates a missing file: a typo must not migrate an empty store.
    if !path.is_file() {
        bail!("--from {}: no such SQLite file", path.display());
    }
    if !postgres::is_url(to) {
        bail!("--to `{}` is not a postgres:// URL", postgres::redact(to));
    }
    if let Some(why) = postgres::insecure_transport(to) {
        bail!("--to `{}`: {why}", postgres::redact(to));
    }
    let src = sqlite::SqliteStore::open(path).await?;
    let dst = postgres::PgStore::connect(to, 4).await?;
    let (origin, key) = log_origin(&cfg, &src).await?;
    let key = std::sync::Arc::new(key);
    let before = annexa_collector::log::Log::open(&src, key.clone(), &origin)
        .await
        .with_context(|| format!("the evidence log in {}", path.display()))?
        .latest();
    let copied = annexa_collector::migrate::copy(&src, &dst).await?;
    for (table, n) in &copied {
        println!("{table:<20} {n} rows");
    }
    let after = annexa_collector::log::Log::open(&dst, key, &origin)
        .await
        .with_context(|| format!("the evidence log in {}", postgres::redact(to)))?
        .latest();
    let hex = annexa_evidence::encoding::hex;
    println!(
        "log before: {} entries, root {}",
        before.size,
        hex(&before.root)
    );
    println!(
        "log after:  {} entries, root {}",
        after.size,
        hex(&after.root)
    );
    if (before.size, before.root) != (after.size, after.root) {
        bail!("the evidence log differs after the migration: do not use the destination");
    }
    println!(
        "migrated to {}; set database_url to it and start the collector",
        postgres::redact(to)
    );
    Ok(())
}

async fn log_command(command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Key { at } => {
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            let (origin, key) = log_origin(&cfg, store.as_ref()).await?;
            let v = annexa_evidence::note::Verifier::new(&origin, key.public())?;
            println!("{v}");
        }
        LogCommand::Checkpoint { at } => {
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            match store.latest_checkpoint().await? {
                Some(c) => print!("{}", c.note),
                None => bail!("the log has no stored checkpoint yet"),
            }
        }
        LogCommand::Export { at, out } => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            let (origin, _) = log_origin(&cfg, store.as_ref()).await?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
            let label = out.display().to_string();
            let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut w = std::io::BufWriter::new(file);
                while let Some(chunk) = rx.blocking_recv() {
                    w.write_all(&chunk)?;
                }
                w.into_inner()?.sync_all()?;
                Ok(())
            });
            let written = annexa_collector::export::export(
                store.as_ref(),
                &origin,
                cfg.retention.clone(),
                tx,
            )
            .await;
            writer
                .await
                .context("the bundle writer stopped")?
                .with_context(|| format!("writing {label}"))?;
            let written = written?;
            eprintln!("exported {written} log entries of {origin} to {label}");
        }
    }
    Ok(())
}

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
    /// Everything in one command, no external service: start a collector on
    /// the embedded SQLite store, enroll a local agent, scan this machine,
    /// deliver the signed evidence and print what the collector recorded.
    Quickstart {
        /// Directory for the collector's and the agent's state (default: a new
        /// directory under the system temporary directory; it is kept so you
        /// can look at what was written).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
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
        /// The version.
        version: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a version (default: the newest): as imported, or as toml or csv.
    Export {
        #[command(flatten)]
        at: Where,
        /// The version.
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

fn soa_format(file: &std::path::Path, format: Option<&str>) -> anyhow::Result<Format> {
    match format {
        None => Ok(Format::from_path(&file.display().to_string())),
        Some(f) => f.parse().map_err(|m| anyhow::anyhow!("--{m}")),
    }
}

fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

async fn newest_or(
    store: &dyn annexa_collector::store::Store,
    v: Option<i64>,
) -> anyhow::Result<i64> {
    match v {
        Some(v) => Ok(v),
        None => annexa_collector::soa::newest(store)
            .await?
            .context("no Statement of Applicability has been imported yet"),
    }
}

async fn soa_command(command: SoaCommand) -> anyhow::Result<ExitCode> {
    match command {
        SoaCommand::Lint { at, file, format } => {
            let cfg = at.load()?;
            let packs = cfg.packs().map_err(anyhow::Error::msg)?;
            let format = soa_format(&file, format.as_deref())?;
            let text = read_text(&file)?;
            match annexa_checks::soa::lint(&file.display().to_string(), &text, format, &packs) {
                Ok(soa) => {
                    let cov = soa.coverage(&packs);
                    let applicable = soa.controls.iter().filter(|c| c.applicable).count();
                    let manual = cov.values().filter(|c| c.is_manual()).count();
                    println!(
                        "{}: ISO/IEC 27001:{} SoA, {} controls: {applicable} applicable ({} with automated checks, {manual} manual), {} excluded; no problems",
                        file.display(),
                        soa.edition,
                        soa.controls.len(),
                        applicable - manual,
                        soa.controls.len() - applicable
                    );
                }
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        SoaCommand::Import {
            at,
            file,
            format,
            by,
            comment,
        } => {
            let cfg = at.load()?;
            let packs = cfg.packs().map_err(anyhow::Error::msg)?;
            let store = open_store(&cfg).await?;
            let format = soa_format(&file, format.as_deref())?;
            let text = read_text(&file)?;
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            match annexa_collector::soa::import(
                store.as_ref(),
                &packs,
                &file.display().to_string(),
                &text,
                format,
                &by,
                comment,
            )
            .await
            {
                Ok((v, _)) => println!(
                    "imported {} as SoA version {} (ISO/IEC 27001:{}) by {} at {}",
                    file.display(),
                    v.version,
                    v.edition,
                    v.imported_by,
                    v.imported_at
                ),
                Err(annexa_collector::soa::ImportError::Invalid(e)) => {
                    eprint!("{e}");
                    eprintln!("nothing was imported");
                    return Ok(ExitCode::from(1));
                }
                Err(annexa_collector::soa::ImportError::Store(e)) => return Err(e.into()),
            }
        }
        SoaCommand::List { at } => {
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            for v in store.soa_versions().await? {
                println!(
                    "{:>4}  {}  {:<5} {}  by {}{}",
                    v.version,
                    v.imported_at,
                    v.edition,
                    &v.sha256[..12],
                    v.imported_by,
                    v.comment.map(|c| format!(": {c}")).unwrap_or_default()
                );
            }
        }
        SoaCommand::Show { at, version, json } => {
            let cfg = at.load()?;
            let packs = cfg.packs().map_err(anyhow::Error::msg)?;
            let store = open_store(&cfg).await?;
            let v = newest_or(store.as_ref(), version).await?;
            let (meta, soa, _) = annexa_collector::soa::load(store.as_ref(), v).await?;
            let shown = annexa_collector::soa::show(meta, &soa, &packs);
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                print!("{shown}");
            }
        }
        SoaCommand::Export {
            at,
            version,
            format,
        } => {
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            let v = newest_or(store.as_ref(), version).await?;
            let (_, soa, source) = annexa_collector::soa::load(store.as_ref(), v).await?;
            match format.as_str() {
                "source" => print!("{source}"),
                "toml" => print!("{}", soa.to_toml()),
                "csv" => print!("{}", soa.to_csv()),
                other => bail!("--format is `{other}`; expected source, toml or csv"),
            }
        }
        SoaCommand::Diff { at, from, to, json } => {
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            let (_, a, _) = annexa_collector::soa::load(store.as_ref(), from).await?;
            let (_, b, _) = annexa_collector::soa::load(store.as_ref(), to).await?;
            let d = annexa_checks::soa::diff::diff(&a, &b);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{d}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
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
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "annexa-collector",
                &mut std::io::stdout(),
            );
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
        }
        Command::Soa { command } => return soa_command(command).await,
        Command::Log { command } => log_command(command).await?,
        Command::Migrate { at, from, to } => migrate_command(at, &from, &to).await?,
        Command::Quickstart { data } => {
            let temp;
            let dir = match data {
                Some(d) => d,
                None => {
                    temp = tempfile_dir()?;
                    temp.clone()
                }
            };
            let result = annexa_collector::quickstart::quickstart(&dir).await;
            if result.is_ok() {
                println!("\n(data in {})", dir.display());
            }
            result?;
        }
        Command::Init { at, names, no_tls } => {
            let cfg = at.load()?;
            let names = if names.is_empty() {
                datadir::default_names()
            } else {
                names
            };
            let dir = DataDir::new(&cfg.data_dir);
            let out = datadir::init(&dir, &names, !no_tls)?;
            open_store(&cfg).await?;
            println!("data directory: {}", cfg.data_dir.display());
            println!("receipt key id: {}", out.signing_key_id);
            if let Some(fp) = out.ca_fingerprint {
                println!("CA certificate: {}", dir.ca_cert().display());
                println!("CA fingerprint: {fp}");
                println!(
                    "agents enroll with: annexa enroll --server https://{}:{} --token-file TOKEN_FILE --ca-fingerprint {fp}",
                    names.first().map(String::as_str).unwrap_or("localhost"),
                    cfg.listen.port()
                );
            }
            if !out.created {
                println!("(everything already existed; nothing was changed)");
            }
        }
        Command::Serve { at, listen } => {
            let mut cfg = at.load()?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            init_logging(&cfg.log_format);
            let server = annexa_collector::start(&cfg).await?;
            tracing::info!(addr = %server.addr, data = %cfg.data_dir.display(), "collector listening (HTTPS)");
            shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            server.shutdown(Duration::from_secs(10)).await;
        }
        Command::Key {
            command: KeyCommand::Rotate { at },
        } => {
            let cfg = at.load()?;
            let r = annexa_collector::rotate::rotate(&cfg).await?;
            if r.resumed {
                println!("finished the rotation an earlier run began");
            }
            println!("log:       {}", r.origin);
            println!("at size:   {}", r.size);
            println!("retired:   {}", r.old);
            println!("in force:  {}", r.new);
            println!(
                "agents adopt the new key at their next delivery; give auditors the new verifier key (the old one still verifies everything, through the transition)"
            );
        }
        Command::Token {
            command: TokenCommand::Create { at, ttl, labels },
        } => {
            let cfg = at.load()?;
            let store = open_store(&cfg).await?;
            let ttl = clock::parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            let labels: BTreeMap<String, String> = labels.into_iter().collect();
            let (token, _) = create_enroll_token(store.as_ref(), ttl, &labels).await?;
            println!("{token}");
        }
        Command::ApiToken { command } => match command {
            ApiTokenCommand::Create {
                at,
                name,
                role,
                ttl,
            } => {
                let cfg = at.load()?;
                let store = open_store(&cfg).await?;
                let ttl = ttl
                    .map(|t| clock::parse_ttl(&t))
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                println!(
                    "{}",
                    create_api_token(store.as_ref(), &name, role, ttl).await?
                );
            }
            ApiTokenCommand::Revoke { at, name } => {
                let cfg = at.load()?;
                let store = open_store(&cfg).await?;
                let n = store.revoke_api_token(&name, &clock::now_rfc3339()).await?;
                if n == 0 {
                    bail!("no active API token is named `{name}`");
                }
                println!("revoked {n} token(s) named `{name}`");
            }
        },
        Command::Agent { command } => match command {
            AgentCommand::List { at } => {
                let cfg = at.load()?;
                let store = open_store(&cfg).await?;
                for a in store.agents().await? {
                    let state = if a.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<24} {:<8} next={} last_seen={}",
                        a.id,
                        a.hostname,
                        state,
                        a.next_sequence,
                        a.last_seen_at.as_deref().unwrap_or("never")
                    );
                }
            }
            AgentCommand::Revoke { at, id } => {
                let cfg = at.load()?;
                let store = open_store(&cfg).await?;
                store
                    .revoke_agent(&id, &clock::now_rfc3339())
                    .await
                    .with_context(|| format!("revoking {id}"))?;
                println!(
                    "agent {id} revoked; a running collector refuses its evidence from its next request"
                );
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh private directory under the system temporary directory.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("annexa-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| base.display().to_string())?;
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| base.display().to_string())?;
    Ok(base)
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
