//! Several regions in one deployment (rules.md, "Routing"): which profile decides a line, chosen by the
//! institution's administrative area and the line's service time — as data, a routing table in TOML.
//!
//! ```toml
//! default = "national-2024"                 # where no route is in force
//!
//! [profiles]                                # profiles that are files, by name (paths relative to this file)
//! "jiangsu-2026" = "jiangsu-2026.toml"
//!
//! [[route]]
//! area = "3208"                             # a prefix of the 6-digit GB/T 2260 area: 淮安市
//! profile = "huaian-2020"
//! until = "2025-01-01"                      # [from, until): then the next route in force, or the default
//! ```
//!
//! The route that decides is, among the routes whose `area` is a prefix of the institution's area and
//! whose period holds the line's `fee_ocur_time`, the one with the longest prefix; `area = "*"` matches
//! every area, below any prefix. Two routes of one area may not be in force at once. No route in force:
//! the default. A deployment without a routing table is [`Rules::single`]: one profile for all lines.
//!
//! The lookup is on the hot path: one hash lookup per prefix length in use (at most six), over tables
//! built once, and a scan of the few periods of the matching route. Nothing is allocated per line. This
//! module reads no file: [`Rules::from_toml`] asks its caller for the text of each profile file.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::profile::{Profile, ProfileError};
use crate::record::{BjTime, Interval};

/// The profiles of a deployment and the routing table that chooses among them.
#[derive(Clone, Debug)]
pub struct Rules {
    profiles: Vec<Profile>,
    router: Option<Router>,
}

/// Where the profiles apply.
#[derive(Clone, Debug)]
struct Router {
    /// Index of the default profile.
    default: usize,
    /// By prefix length, longest first: the divisor that cuts an area to that length, and the routes
    /// of that length by prefix value.
    lengths: Vec<(u32, FxHashMap<u32, Vec<Span>>)>,
    /// `area = "*"`.
    any: Vec<Span>,
    /// The table as written, for reports.
    routes: Vec<RouteInfo>,
}

/// A route's period and profile.
#[derive(Clone, Copy, Debug)]
struct Span {
    during: Interval,
    profile: usize,
    /// Its index in the table as written.
    route: usize,
}

/// One route of the table, for reports and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// The area prefix as written (`*` for every area).
    pub area: String,
    /// The profile's name.
    pub profile: String,
    /// First service time in force.
    pub from: Option<BjTime>,
    /// First service time no longer in force.
    pub until: Option<BjTime>,
}

/// Why a routing table was refused; names the setting.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// Not valid TOML, or an unknown or missing key.
    #[error("routing table is not valid: {0}")]
    Toml(String),
    /// A value a setting does not allow.
    #[error("routing setting `{setting}`: {why}")]
    Invalid {
        /// The setting, e.g. `route[2].area`.
        setting: String,
        /// Why.
        why: String,
    },
    /// A profile that could not be loaded.
    #[error("routing setting `{setting}`: profile `{name}`: {why}")]
    Profile {
        /// The setting that names it.
        setting: String,
        /// Its name.
        name: String,
        /// Why.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    default: String,
    #[serde(default)]
    profiles: BTreeMap<String, String>,
    #[serde(default)]
    route: Vec<RouteFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    area: String,
    profile: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// A human note (the city's name, the regulation): not read.
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// Powers of ten that cut a 6-digit area to a prefix of `len` digits.
const fn divisor(len: usize) -> u32 {
    10u32.pow(6 - len as u32)
}

impl Rules {
    /// One profile for every line: a deployment without a routing table, as before routing existed.
    pub fn single(profile: Profile) -> Rules {
        Rules { profiles: vec![profile], router: None }
    }

    /// Parses a routing table. `load_file(path)` returns the TOML text of a profile named in its
    /// `[profiles]` section (the caller resolves the path, relative to the routing file); other names are
    /// shipped profiles. Each profile's own `name` must be the name the table uses, so that decisions name
    /// what the table says; every listed profile must be used.
    pub fn from_toml(
        text: &str,
        mut load_file: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<Rules, RoutingError> {
        let file: RoutingFile = toml::from_str(text).map_err(|e| RoutingError::Toml(e.to_string()))?;
        let mut profiles: Vec<Profile> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut resolve = |name: &str, setting: &str| -> Result<usize, RoutingError> {
            let name = name.trim();
            if let Some(i) = index.get(name) {
                return Ok(*i);
            }
            let err = |why: String| RoutingError::Profile { setting: setting.to_owned(), name: name.to_owned(), why };
            let profile = match file.profiles.get(name) {
                Some(path) => {
                    let text = load_file(path).map_err(&err)?;
                    Profile::from_toml(&text).map_err(|e| err(format!("{path}: {e}")))?
                }
                None => Profile::shipped(name).map_err(|e| match e {
                    ProfileError::UnknownName(_) => {
                        err("not a shipped profile (national-2024, huaian-2020, lanzhou-2014) and not in `[profiles]`"
                            .to_owned())
                    }
                    other => err(other.to_string()),
                })?,
            };
            if profile.name != name {
                return Err(err(format!(
                    "the file names itself `{}`; the table and the file must agree",
                    profile.name
                )));
            }
            profiles.push(profile);
            index.insert(name.to_owned(), profiles.len() - 1);
            Ok(profiles.len() - 1)
        };

        let default = resolve(&file.default, "default")?;
        let mut lengths: Vec<FxHashMap<u32, Vec<Span>>> = vec![FxHashMap::default(); 7];
        let mut routes = Vec::with_capacity(file.route.len());
        let mut any = Vec::new();
        for (i, r) in file.route.iter().enumerate() {
            let at = |field: &str| format!("route[{i}].{field}");
            let area = r.area.trim();
            let prefix: Option<(usize, u32)> = match area {
                "*" => None,
                a if (1..=6).contains(&a.len()) && a.bytes().all(|c| c.is_ascii_digit()) => {
                    // Invariant: 1 to 6 ASCII digits parse into a u32.
                    Some((a.len(), a.parse().unwrap_or(0)))
                }
                _ => {
                    return Err(RoutingError::Invalid {
                        setting: at("area"),
                        why: format!(
                            "`{area}` is not an area prefix: 1 to 6 digits of the GB/T 2260 code (`32` Jiangsu, `3208` Huai'an), or `*`"
                        ),
                    });
                }
            };
            let time = |field: &str, v: &Option<String>| -> Result<Option<BjTime>, RoutingError> {
                v.as_deref()
                    .map(|s| {
                        BjTime::parse(s.trim())
                            .map_err(|e| RoutingError::Invalid { setting: at(field), why: format!("`{s}`: {e}") })
                    })
                    .transpose()
            };
            let (from, until) = (time("from", &r.from)?, time("until", &r.until)?);
            let during = Interval { from: from.unwrap_or(BjTime::MIN), until: until.unwrap_or(BjTime::MAX) };
            if during.until <= during.from {
                return Err(RoutingError::Invalid { setting: at("until"), why: "must be after `from`".into() });
            }
            let profile = resolve(&r.profile, &at("profile"))?;
            let spans = match prefix {
                None => &mut any,
                Some((len, value)) => lengths[len].entry(value).or_default(),
            };
            if let Some(other) = spans.iter().find(|s| s.during.from < during.until && during.from < s.during.until) {
                return Err(RoutingError::Invalid {
                    setting: at("from"),
                    why: format!(
                        "area `{area}` already has route[{}] in force during this period; one area has one profile at a time",
                        other.route
                    ),
                });
            }
            spans.push(Span { during, profile, route: i });
            routes.push(RouteInfo { area: area.to_owned(), profile: r.profile.trim().to_owned(), from, until });
        }
        if let Some(unused) = file.profiles.keys().find(|n| !index.contains_key(n.trim())) {
            return Err(RoutingError::Invalid {
                setting: format!("profiles.{unused}"),
                why: "listed but no route (nor `default`) uses it".into(),
            });
        }
        let lengths = lengths
            .into_iter()
            .enumerate()
            .rev()
            .filter(|(len, routes)| *len > 0 && !routes.is_empty())
            .map(|(len, routes)| (divisor(len), routes))
            .collect();
        Ok(Rules { profiles, router: Some(Router { default, lengths, any, routes }) })
    }

    /// The profile in force for an institution's area at a service time.
    #[inline]
    pub fn select(&self, institution: crate::record::InstitutionCode, t: BjTime) -> &Profile {
        let Some(router) = &self.router else {
            return &self.profiles[0];
        };
        let area = institution.area();
        let in_force = |spans: &[Span]| spans.iter().find(|s| s.during.contains(t)).map(|s| s.profile);
        let chosen = router
            .lengths
            .iter()
            .find_map(|(div, routes)| routes.get(&(area / div)).and_then(|spans| in_force(spans)))
            .or_else(|| in_force(&router.any))
            .unwrap_or(router.default);
        &self.profiles[chosen]
    }

    /// Every profile of the deployment; the default first.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The default profile (the only one without a routing table).
    pub fn default_profile(&self) -> &Profile {
        match &self.router {
            Some(r) => &self.profiles[r.default],
            None => &self.profiles[0],
        }
    }

    /// The routes as written; empty without a routing table.
    pub fn routes(&self) -> &[RouteInfo] {
        self.router.as_ref().map_or(&[], |r| &r.routes)
    }

    /// True when a routing table chooses the profile.
    pub fn is_routed(&self) -> bool {
        self.router.is_some()
    }
}

#[cfg(test)]
mod tests;
