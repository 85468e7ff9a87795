//! Who may ask the `/v1/…` queries, and about whom: per-caller bearer tokens with a scope, read from a
//! tokens file (`http.tokens_file`) that holds only each token's SHA-256, and the query log.
//!
//! - **Scopes.** `all` (the agency's help desk: every code), `institution` (one institution's staff
//!   office: its own record, its staff's status while they are registered there, and lines it settled),
//!   `practitioner` (one person: their own code, and lines that name them). A refused scope is a 403
//!   that says why; a missing or unknown token a 401 that says nothing about the callers.
//! - **Storage.** The file never holds a token, only `sha256 = "<64 hex>"` of it: a leaked file, backup
//!   or log of the configuration gives nobody a token. Tokens are random (`claimgate tokens new`
//!   prints one, 256 bits), so an unsalted SHA-256 is enough: there is no dictionary to try.
//! - **Comparison.** The presented token is hashed and its digest compared with every caller's in
//!   constant time (`subtle`), with no early exit, so the time of an answer does not depend on how much
//!   of a guess was right.
//! - **Rotation.** The file is read again when its modification time changes (checked every
//!   [`RELOAD_EVERY`]): a caller added or revoked takes effect without a restart. A file that no longer
//!   parses is refused and the callers before it stay, with an `http_tokens_invalid` log line.
//! - **The query log.** Every `/v1/…` query is one `http_query` line: who (the caller's name and
//!   scope, the peer address), which endpoint and which code(s), and whether the scope allowed it —
//!   never the answer. Unknown tokens are `http_unauthenticated` lines (the token is not logged).
//!
//! Without `http.tokens_file` and `http.token`, `/v1/…` is open (the port binds to loopback by default)
//! and the log names the caller `anonymous`. The older single shared token `http.token` still works: it
//! is one caller named `http.token` with scope `all`, and a start-up warning suggests the tokens file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use claimgate::record::{InstitutionCode, PractitionerCode};

/// How often the tokens file's modification time is checked.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// What a caller may ask about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every code.
    All,
    /// One institution: its own record, its staff while registered there, lines it settled.
    Institution(InstitutionCode),
    /// One practitioner: their own code, and lines that name them.
    Practitioner(PractitionerCode),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Institution(c) => write!(f, "institution {c}"),
            Scope::Practitioner(c) => write!(f, "practitioner {c}"),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The name the tokens file gives it; it appears in the query log.
    pub name: Arc<str>,
    /// What it may ask about.
    pub scope: Scope,
}

/// One caller of the tokens file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerText {
    name: String,
    sha256: String,
    scope: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    caller: Vec<CallerText>,
}

/// The callers the operations port knows, each by its token's SHA-256.
#[derive(Default)]
pub struct Callers {
    entries: Vec<([u8; 32], Caller)>,
}

/// SHA-256 of a token, as the tokens file writes it (lowercase hex).
pub fn token_digest_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let b = text.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

impl Callers {
    /// Parses a tokens file's text; errors name the caller and the field.
    pub fn parse(text: &str) -> Result<Callers> {
        let file: TokensFile = toml::from_str(text).context("not a tokens file")?;
        let mut entries: Vec<([u8; 32], Caller)> = Vec::with_capacity(file.caller.len());
        for (i, c) in file.caller.into_iter().enumerate() {
            let at = format!("caller[{i}]");
            let name = c.name.trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                bail!("{at}.name: 1 to 64 characters without control characters");
            }
            let at = format!("{at} (`{name}`)");
            if entries.iter().any(|(_, e)| &*e.name == name) {
                bail!("{at}.name: two callers have that name; the query log must tell them apart");
            }
            let Some(hash) = parse_hex32(c.sha256.trim()) else {
                bail!(
                    "{at}.sha256: expected the token's SHA-256 as 64 hex digits (never the token itself; `claimgate tokens new` prints both)"
                );
            };
            if entries.iter().any(|(h, _)| *h == hash) {
                bail!("{at}.sha256: another caller has the same token");
            }
            let code = c.code.as_deref().map(str::trim);
            let scope = match (c.scope.trim(), code) {
                ("all", None) => Scope::All,
                ("all", Some(_)) => bail!("{at}.code: a caller of scope `all` has no code"),
                ("institution", Some(code)) => Scope::Institution(
                    InstitutionCode::parse(code).map_err(|e| anyhow::anyhow!("{at}.code: `{code}`: {e}"))?,
                ),
                ("practitioner", Some(code)) => Scope::Practitioner(
                    PractitionerCode::parse(code).map_err(|e| anyhow::anyhow!("{at}.code: `{code}`: {e}"))?,
                ),
                ("institution" | "practitioner", None) => {
                    bail!("{at}.code: scope `{}` needs the code it is limited to", c.scope.trim())
                }
                (other, _) => bail!("{at}.scope: `{other}`; expected `all`, `institution` or `practitioner`"),
            };
            entries.push((hash, Caller { name: name.into(), scope }));
        }
        Ok(Callers { entries })
    }

    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Callers> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Callers::parse(&text).with_context(|| path.display().to_string())
    }

    /// The single shared token of the older setting `http.token`: one caller of scope `all`.
    pub fn shared(token: &str) -> Callers {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        Callers { entries: vec![(hash, Caller { name: "http.token".into(), scope: Scope::All })] }
    }

    /// How many callers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller whose token this is. Every entry is compared, in constant time, whatever matched.
    pub fn find(&self, token: &str) -> Option<&Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, caller) in &self.entries {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(caller);
            }
        }
        found
    }
}

/// How `/v1/…` authenticates: open, or by the callers of a tokens file or the shared token.
#[derive(Clone)]
pub enum Auth {
    /// No token configured: every query is answered, logged as `anonymous` with scope `all`.
    Open,
    /// Callers by token; swapped whole when the tokens file changes.
    Tokens(Arc<ArcSwap<Callers>>),
}

/// Why a query was not authenticated.
pub enum Unauthenticated {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A bearer token no caller has.
    Unknown,
}

impl Auth {
    /// The caller of a request.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Unauthenticated> {
        let callers = match self {
            Auth::Open => return Ok(Caller { name: "anonymous".into(), scope: Scope::All }),
            Auth::Tokens(c) => c.load(),
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Unauthenticated::Missing)?;
        callers.find(given).cloned().ok_or(Unauthenticated::Unknown)
    }
}

/// Keeps `callers` in step with the tokens file at `path` until `shutdown`: read again when its
/// modification time changes; a file that does not parse is refused and the callers before it stay.
pub async fn watch(path: PathBuf, callers: Arc<ArcSwap<Callers>>, shutdown: CancellationToken) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = modified(&path);
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match Callers::load(&path) {
            Ok(c) => {
                tracing::info!(event = "http_tokens_loaded", file = %path.display(), callers = c.len());
                callers.store(Arc::new(c));
            }
            Err(e) => tracing::error!(
                event = "http_tokens_invalid",
                file = %path.display(),
                error = %format!("{e:#}"),
                "the tokens file was refused; the callers read before it stay"
            ),
        }
    }
}

/// What became of a query, as the query log says it: never the answer itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (whatever the answer).
    Answered,
    /// The caller's scope does not cover the question (403).
    Refused,
    /// The question was malformed (400, 413).
    BadRequest,
    /// The tables are not loaded yet (503).
    Unavailable,
}

impl Outcome {
    /// The word of the log line and the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Refused => "refused",
            Outcome::BadRequest => "bad_request",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// A code as the query log writes it: at most 64 characters, control characters replaced, so that a
/// caller cannot forge or flood log lines through a path.
pub fn loggable(code: &str) -> String {
    code.trim().chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn peer_text(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "-".to_owned(), |p| p.ip().to_string())
}

/// The query log: one line per `/v1/…` query — who asked (caller, scope, peer address), which endpoint,
/// which code(s), and what became of it. Never the answer.
pub fn log_query(caller: &Caller, peer: Option<SocketAddr>, endpoint: &str, codes: &str, outcome: Outcome) {
    tracing::info!(
        event = "http_query",
        caller = %caller.name,
        scope = %caller.scope,
        peer = %peer_text(peer),
        endpoint,
        code = codes,
        outcome = outcome.as_str(),
    );
    crate::io::metrics::query(endpoint, outcome.as_str());
}

/// A query without a known token, logged without the token.
pub fn log_unauthenticated(why: &Unauthenticated, peer: Option<SocketAddr>, endpoint: &str, codes: &str) {
    let why = match why {
        Unauthenticated::Missing => "no bearer token",
        Unauthenticated::Unknown => "unknown token",
    };
    tracing::warn!(event = "http_unauthenticated", why, peer = %peer_text(peer), endpoint, code = codes);
    crate::io::metrics::query(endpoint, "unauthenticated");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(callers: &[(&str, &str, &str, Option<&str>)]) -> String {
        callers
            .iter()
            .map(|(name, token, scope, code)| {
                let code = code.map(|c| format!("code = \"{c}\"\n")).unwrap_or_default();
                format!(
                    "[[caller]]\nname = \"{name}\"\nsha256 = \"{}\"\nscope = \"{scope}\"\n{code}",
                    token_digest_hex(token)
                )
            })
            .collect()
    }

    #[test]
    fn callers_are_found_by_their_token_only() {
        let text = file(&[
            ("desk", "t-desk", "all", None),
            ("h1", "t-h1", "institution", Some("H11010500001")),
            ("d1", "t-d1", "practitioner", Some("D110105000123")),
        ]);
        let callers = Callers::parse(&text).unwrap();
        assert_eq!(callers.find("t-desk").unwrap().scope, Scope::All);
        assert_eq!(
            callers.find("t-h1").unwrap().scope,
            Scope::Institution(InstitutionCode::parse("H11010500001").unwrap())
        );
        assert_eq!(&*callers.find("t-d1").unwrap().name, "d1");
        for wrong in ["", "t-desk ", "t-des", "T-DESK", &token_digest_hex("t-desk")] {
            assert!(callers.find(wrong).is_none(), "{wrong:?}");
        }
        // The file holds no token.
        assert!(!text.contains("t-desk"));
    }

    #[test]
    fn a_bad_tokens_file_names_the_caller_and_the_field() {
        let digest = token_digest_hex("x");
        let cases = [
            ("[[caller]]\nname = \"a\"\nsha256 = \"x\"\nscope = \"all\"\n".to_owned(), "caller[0] (`a`).sha256"),
            (format!("[[caller]]\nname = \"a\"\nsha256 = \"{digest}\"\nscope = \"any\"\n"), "caller[0] (`a`).scope"),
            (
                format!("[[caller]]\nname = \"a\"\nsha256 = \"{digest}\"\nscope = \"institution\"\n"),
                "caller[0] (`a`).code",
            ),
            (
                format!(
                    "[[caller]]\nname = \"a\"\nsha256 = \"{digest}\"\nscope = \"institution\"\ncode = \"D110105000123\"\n"
                ),
                "caller[0] (`a`).code",
            ),
            (
                format!("[[caller]]\nname = \"a\"\nsha256 = \"{digest}\"\nscope = \"all\"\ncode = \"H11010500001\"\n"),
                "caller[0] (`a`).code",
            ),
            (format!("[[caller]]\nname = \"\"\nsha256 = \"{digest}\"\nscope = \"all\"\n"), "caller[0].name"),
            (file(&[("a", "x", "all", None), ("a", "y", "all", None)]), "caller[1] (`a`).name"),
            (file(&[("a", "x", "all", None), ("b", "x", "all", None)]), "caller[1] (`b`).sha256"),
            (format!("[[caller]]\nname = \"a\"\ntoken = \"x\"\nsha256 = \"{digest}\"\nscope = \"all\"\n"), "token"),
        ];
        for (text, needle) in cases {
            let e = format!("{:#}", Callers::parse(&text).err().unwrap_or_else(|| panic!("accepted:\n{text}")));
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn the_shared_token_is_one_caller_of_scope_all() {
        let c = Callers::shared("s3cret");
        assert_eq!(c.find("s3cret").map(|c| (&*c.name, &c.scope)), Some(("http.token", &Scope::All)));
        assert!(c.find("s3cre").is_none());
    }
}
