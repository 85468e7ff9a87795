//! Scoring catalogues: every item of a region's deduction articles, with its id, article, band of
//! points and Chinese text — data files under `profiles/catalogue/`, embedded in the binary.
//!
//! Ids follow scoring.md: `<profile>/<article>.<clause>[.<sub>…]` in Arabic numerals, e.g.
//! `national-2024/10.3.3.1` for Qinghai Art. 10 (三) 3.(1) (seed 001_70455349a9435e17.txt). Loading
//! checks every id, band and text; a ledger can only name an item that is here.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The catalogues compiled into the binary, by name.
pub const SHIPPED: [(&str, &str); 3] = [
    ("national-2024", include_str!("../../profiles/catalogue/national-2024.toml")),
    ("huaian-2020", include_str!("../../profiles/catalogue/huaian-2020.toml")),
    ("lanzhou-2014", include_str!("../../profiles/catalogue/lanzhou-2014.toml")),
];

/// Why a catalogue was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// Not valid TOML or not of the catalogue's shape.
    #[error("catalogue {catalogue}: {message}")]
    Invalid {
        /// The catalogue's name.
        catalogue: String,
        /// What is wrong.
        message: String,
    },
    /// No such shipped catalogue.
    #[error("no shipped catalogue named `{0}` (shipped: national-2024, huaian-2020, lanzhou-2014)")]
    UnknownName(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    profile: String,
    seed: String,
    item: Vec<ItemFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemFile {
    id: String,
    article: String,
    band: [u32; 2],
    /// `"main"`: the item applies only to a person with main responsibility (Qinghai Art. 10(3)1,
    /// 10(4)1: 该人员负主要责任的).
    #[serde(default)]
    responsibility: Option<String>,
    text: String,
    summary: String,
}

/// One deduction item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// `<profile>/<article>.<clause>…`.
    pub id: String,
    /// The article as written in the seed, e.g. `第十条（三）3.（1）`.
    pub article: String,
    /// Lowest points.
    pub low: u32,
    /// Highest points; equal to `low` for a fixed-value item.
    pub high: u32,
    /// Only a person with main responsibility can be scored under it.
    pub main_only: bool,
    /// The seed's Chinese text.
    pub text: String,
    /// An English summary.
    pub summary: String,
}

impl Item {
    /// True when the item has a single value.
    pub fn is_fixed(&self) -> bool {
        self.low == self.high
    }

    /// The band's middle value (rounded down), for important responsibility.
    pub fn middle(&self) -> u32 {
        (self.low + self.high) / 2
    }
}

/// A validated catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalogue {
    /// The profile whose ids these are (the id prefix).
    pub profile: String,
    /// The seed file the items come from.
    pub seed: String,
    items: BTreeMap<String, Item>,
}

/// Is `rest` of the form `<n>(.<n>)*` with positive numbers without leading zeros?
fn is_article_path(rest: &str) -> bool {
    !rest.is_empty()
        && rest.split('.').all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && !n.starts_with('0'))
}

impl Catalogue {
    /// A shipped catalogue by name.
    pub fn shipped(name: &str) -> Result<Catalogue, CatalogueError> {
        let (_, text) =
            SHIPPED.iter().find(|(n, _)| *n == name).ok_or_else(|| CatalogueError::UnknownName(name.to_owned()))?;
        Catalogue::from_toml(name, text)
    }

    /// Parses and checks a catalogue: ids unique and prefixed with the profile, bands with
    /// `1 <= low <= high`, text and article present.
    pub fn from_toml(name: &str, text: &str) -> Result<Catalogue, CatalogueError> {
        let invalid = |message: String| CatalogueError::Invalid { catalogue: name.to_owned(), message };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let prefix = format!("{}/", file.profile);
        let mut items = BTreeMap::new();
        for it in file.item {
            let Some(rest) = it.id.strip_prefix(&prefix) else {
                return Err(invalid(format!("item `{}` does not start with `{prefix}`", it.id)));
            };
            if !is_article_path(rest) {
                return Err(invalid(format!("item `{}`: expected `{prefix}<article>.<clause>…` in digits", it.id)));
            }
            let [low, high] = it.band;
            if low == 0 || low > high {
                return Err(invalid(format!("item `{}`: band [{low}, {high}] must have 1 <= low <= high", it.id)));
            }
            if it.text.trim().is_empty() || it.article.trim().is_empty() {
                return Err(invalid(format!("item `{}`: text and article are required", it.id)));
            }
            let main_only = match it.responsibility.as_deref() {
                None => false,
                Some("main") => true,
                Some(other) => {
                    return Err(invalid(format!(
                        "item `{}`: responsibility `{other}`; the only restriction is \"main\"",
                        it.id
                    )));
                }
            };
            let item = Item {
                id: it.id.clone(),
                article: it.article,
                low,
                high,
                main_only,
                text: it.text,
                summary: it.summary,
            };
            if items.insert(it.id.clone(), item).is_some() {
                return Err(invalid(format!("item `{}` is listed twice", it.id)));
            }
        }
        if items.is_empty() {
            return Err(invalid("no items".into()));
        }
        Ok(Catalogue { profile: file.profile, seed: file.seed, items })
    }

    /// The item with this id.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.items.get(id)
    }

    /// Every item, in id order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false: a catalogue without items is refused.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogues_load_with_every_item_of_the_seed_articles() {
        // Qinghai Art. 10(3)-(6): 10 + 4 + 5 + 4 leaf items; Huai'an Art. 14-17: 6 + 6 + 4 + 10;
        // Lanzhou Art. 12-14: 6 + 8 + 9.
        for (name, n) in [("national-2024", 23), ("huaian-2020", 26), ("lanzhou-2014", 23)] {
            let c = Catalogue::shipped(name).unwrap();
            assert_eq!(c.len(), n, "{name}");
            assert_eq!(c.profile, name);
        }
        let c = Catalogue::shipped("national-2024").unwrap();
        let i = c.get("national-2024/10.5.2.4").unwrap();
        assert_eq!((i.low, i.high), (7, 9));
        assert!(i.text.contains("借用、套用或出借医保代码"));
        let h = Catalogue::shipped("huaian-2020").unwrap();
        assert!(h.get("huaian-2020/16.3").unwrap().is_fixed());
        assert_eq!(Catalogue::shipped("lanzhou-2014").unwrap().get("lanzhou-2014/13.5").unwrap().low, 5);
        // Qinghai Art. 10(3)1 and 10(4)1: 该人员负主要责任的 — and no other item.
        let main_only: Vec<&str> = c.items().filter(|i| i.main_only).map(|i| i.id.as_str()).collect();
        assert_eq!(main_only, ["national-2024/10.3.1", "national-2024/10.4.1"]);
    }

    fn one(id: &str, band: &str) -> String {
        format!(
            "profile = \"p\"\nseed = \"s\"\n[[item]]\nid = \"{id}\"\narticle = \"a\"\nband = {band}\ntext = \"t\"\nsummary = \"\"\n"
        )
    }

    #[test]
    fn refuses_bad_ids_bands_and_duplicates() {
        assert!(Catalogue::from_toml("p", &one("p/10.3", "[1, 3]")).is_ok());
        for (id, band) in [("q/10.3", "[1, 3]"), ("p/10.x", "[1, 3]"), ("p/10.03", "[1, 3]"), ("p/10.3", "[3, 1]")] {
            assert!(Catalogue::from_toml("p", &one(id, band)).is_err(), "{id} {band}");
        }
        assert!(Catalogue::from_toml("p", &one("p/10.3", "[0, 1]")).is_err());
        let twice = one("p/1.1", "[1, 1]")
            + "[[item]]\nid = \"p/1.1\"\narticle = \"a\"\nband = [1, 1]\ntext = \"t\"\nsummary = \"\"\n";
        let e = Catalogue::from_toml("p", &twice).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }
}
