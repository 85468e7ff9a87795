//! `claimgate tokens new`: a bearer token for one caller of the operations port's `/v1/…` queries, and
//! its entry for the tokens file (`http.tokens_file`, `src/io/http/auth.rs`).
//!
//! The token is `cgt_` and 256 bits from the operating system's random source, base64url: the prefix
//! lets secret scanners (and people) recognise a leaked one, and keeps it from starting with `-`. It goes to standard
//! error only (for the operator to hand to the caller); standard output is the `[[caller]]` entry, with
//! the token's SHA-256 and never the token, so `claimgate tokens new … >> http-tokens.toml` appends the
//! entry and leaves no token in the file. The running streams pick the entry up within seconds.

use std::io::Write as _;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use rand::TryRng as _;

use crate::io::http::auth::{Callers, token_digest_hex};

/// `claimgate tokens …`.
#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Make a token for one caller: the token on standard error, its tokens-file entry on standard output.
    New(NewArgs),
}

/// Arguments of `claimgate tokens new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The caller's name, as the query log will say who asked (a person or a system, e.g. helpdesk-zhang).
    #[arg(long)]
    pub name: String,
    /// `all` (every code), `institution` (one institution's staff office) or `practitioner` (one person).
    #[arg(long)]
    pub scope: String,
    /// The institution or practitioner code the scope is limited to (not with `all`).
    #[arg(long)]
    pub code: Option<String>,
}

/// Runs `claimgate tokens`.
pub fn run(cmd: TokensCmd) -> Result<()> {
    let TokensCmd::New(args) = cmd;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes).context("cannot read the operating system's random source")?;
    let token = format!("cgt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut entry = format!(
        "[[caller]]\nname = {}\nsha256 = \"{}\"\nscope = {}\n",
        q(&args.name),
        token_digest_hex(&token),
        q(&args.scope)
    );
    if let Some(code) = &args.code {
        entry.push_str(&format!("code = {}\n", q(code)));
    }
    // The same checks the stream applies when it reads the file.
    if let Err(e) = Callers::parse(&entry) {
        bail!("{e:#}");
    }
    writeln!(std::io::stdout(), "{entry}")?;
    writeln!(
        std::io::stderr(),
        "token for `{}` (give it to the caller now; only its SHA-256 is kept):\n{token}",
        args.name
    )?;
    Ok(())
}
