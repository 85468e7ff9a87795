//! The review report's HTML page as a reader sees it: generated through `claimgate review`, opened in
//! headless Chromium from Debian's packages (`scripts/chromium.sh`, run by `scripts/test.sh`, installs
//! it and the CJK fonts), and checked against the Markdown report of the same review.
//!
//! Chromium's `--dump-dom` gives the page as the browser parsed it; `--print-to-pdf` prints it as an
//! auditor would. No test here is skipped when Chromium is missing: it fails, saying how to install it.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{bin, claimgate, fen, oracle, read_jsonl};

/// How long Chromium may take for one page; past it, its process group is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    let path = std::env::var_os("CLAIMGATE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "headless Chromium is not installed at {} (set CLAIMGATE_CHROMIUM to another path): run scripts/chromium.sh \
         (scripts/test.sh runs it), which installs Debian's `chromium` and `fonts-noto-cjk`",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args`, standard output to a file, in its own process group
/// with its own profile and HOME in `scratch`; kills the group (by its id, the child's pid) past the
/// timeout. Returns standard output.
fn run_chromium(scratch: &Path, page: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir_in(scratch).unwrap();
    let stdout = scratch.join("chromium.out");
    let stderr = scratch.join("chromium.err");
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", scratch)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish in {CHROMIUM_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium {args:?} failed ({status}):\n{}", std::fs::read_to_string(&stderr).unwrap());
    std::fs::read_to_string(&stdout).unwrap()
}

/// The rows of the Markdown table that follows `heading` (the first table after it), as trimmed cells.
fn md_table(md: &str, heading: &str) -> Vec<Vec<String>> {
    let start = md.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no {heading:?} in:\n{md}"));
    md[start + heading.len() + 2..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and rule
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// Text without tags and with the few entities the page uses decoded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&").trim().to_owned()
}

/// Every `<tag …>…</tag>` element of `html` (not nested in one of its own kind), whole.
fn elements<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        if !after.starts_with([' ', '>', '/']) {
            rest = after;
            continue;
        }
        let end = rest[i..].find(&close).map_or(rest.len(), |e| i + e + close.len());
        out.push(&rest[i..end]);
        rest = &rest[end..];
    }
    out
}

/// An attribute of an element's opening tag.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let tag = &element[..element.find('>')?];
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(&tag[i..i + tag[i..].find('"')?])
}

/// The rendered tables' rows, as cells' text.
fn dom_rows(dom: &str) -> BTreeSet<Vec<String>> {
    elements(dom, "tr")
        .into_iter()
        .map(|tr| {
            let mut cells: Vec<&str> = elements(tr, "td");
            if cells.is_empty() {
                cells = elements(tr, "th");
            }
            cells.into_iter().map(text).collect()
        })
        .collect()
}

/// Markdown cell text as the page shows it: no `**`/backticks, `\|` unescaped.
fn shown(cell: &str) -> String {
    cell.replace("**", "").replace('`', "").replace("\\|", "|")
}

struct Review {
    dir: tempfile::TempDir,
    names: BTreeMap<String, String>,
}

impl Review {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn review(&self, extra: &[&str]) {
        let p = self.path("practitioners.jsonl").display().to_string();
        let i = self.path("named-institutions.jsonl").display().to_string();
        let mut args = vec!["review", "--practitioners", &p, "--institutions", &i, "--quiet"];
        args.extend_from_slice(extra);
        let out = Command::new(bin()).args(&args).output().expect("run review");
        assert!(out.status.success(), "review {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A generated day reviewed against inline decisions that differ both ways — every rejection accepted
/// inline (to recover), every fifth plain accept rejected inline (to pay) — with every institution named
/// in the institution table; the report written as Markdown and as HTML.
fn reviewed() -> Review {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    claimgate(&[
        "gen",
        "--out-dir",
        &d,
        // Sizes and seed chosen for a day with emergency overrides and fewer than 50 institutions with
        // changes (every one charted): checked by the assertions below, not assumed.
        "--practitioners",
        "1000",
        "--claims",
        "4000",
        "--malformed-rate",
        "0.01",
        "--seed",
        "1",
        "--quiet",
    ]);
    // Names for every institution that bills: the generated table holds only those with a status history.
    let claims = std::fs::read(dir.path().join("claims.jsonl")).unwrap();
    let billing: BTreeSet<String> =
        claims.split(|b| *b == b'\n').filter_map(|l| oracle::read(l).ok()).map(|c| c.fixmedins_code).collect();
    let mut records: BTreeMap<String, serde_json::Value> = read_jsonl(&dir.path().join("institutions.jsonl"))
        .into_iter()
        .map(|v| (v["code"].as_str().unwrap().to_owned(), v))
        .collect();
    let mut names = BTreeMap::new();
    for (n, code) in billing.iter().enumerate() {
        let name = format!("测试市第{}人民医院", n + 1);
        let rec = records
            .entry(code.clone())
            .or_insert_with(|| serde_json::json!({"code": code, "kind": "hospital", "periods": [], "version": 1}));
        rec["name"] = name.clone().into();
        names.insert(code.clone(), name);
    }
    let lines: String = records.values().map(|v| v.to_string() + "\n").collect();
    std::fs::write(dir.path().join("named-institutions.jsonl"), lines).unwrap();
    let r = Review { dir, names };

    let claims = r.path("claims.jsonl").display().to_string();
    let first = r.path("first.jsonl");
    r.review(&["--claims", &claims, "--out", &first.display().to_string()]);
    let mut plain = 0;
    let inline: String = read_jsonl(&first)
        .into_iter()
        .map(|mut v| {
            if v["verdict"] == "reject" {
                v["verdict"] = "accept".into();
                v["reason"] = "OK".into();
            } else if v["reason"] == "OK" {
                plain += 1;
                if plain % 5 == 0 {
                    v["verdict"] = "reject".into();
                    v["reason"] = "PRACTITIONER_SUSPENDED".into();
                }
            }
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(r.path("inline.jsonl"), inline).unwrap();
    for report in ["report.md", "report.html"] {
        r.review(&[
            "--claims",
            &claims,
            "--previous",
            &r.path("inline.jsonl").display().to_string(),
            "--report",
            &r.path(report).display().to_string(),
        ]);
    }
    r
}

#[test]
fn the_html_report_renders_in_chromium_with_its_charts_names_colours_fonts_and_the_markdown_totals() {
    let r = reviewed();
    let md = std::fs::read_to_string(r.path("report.md")).unwrap();
    let scratch = r.path("chromium");
    std::fs::create_dir_all(&scratch).unwrap();
    let dom = run_chromium(&scratch, &r.path("report.html"), &["--dump-dom".to_owned()]);
    assert!(dom.contains("</html>"), "chromium rendered no page:\n{dom}");

    // The title first, then the charts.
    let title = dom.find("<h1").expect("a title");
    let first_chart = dom.find("<svg").expect("a chart");
    assert!(title < first_chart, "a chart comes before the report's title");
    assert_eq!(text(elements(&dom, "h1")[0]), "claimgate review report");

    // The charts: one per institution of the recovery report, in its order, plus the two of the report.
    let figures = elements(&dom, "figure");
    let kind = |k: &str| figures.iter().copied().filter(|f| attr(f, "data-chart") == Some(k)).collect::<Vec<_>>();
    let recovery_rows = md_table(&md, "### By institution");
    assert!(recovery_rows.len() >= 2, "the test's day has changes at several institutions:\n{md}");
    let charts = kind("recovery-institution");
    assert_eq!(charts.len(), recovery_rows.len().min(50));
    assert_eq!(kind("by-reason").len(), 1);
    assert_eq!(kind("top-institutions").len(), 1);
    assert!(figures.iter().all(|f| f.contains("<svg") && f.contains("<rect")), "an empty chart");

    // The totals: every row of the Markdown's tables is on the page, cell for cell.
    let rows = dom_rows(&dom);
    let mut compared = 0;
    for heading in
        ["## Recovery report", "### By institution", "### By practitioner", "## Totals by verdict", "## By reason"]
    {
        for row in md_table(&md, heading) {
            let row: Vec<String> = row.iter().map(|c| shown(c)).collect();
            assert!(rows.contains(&row), "{heading}: {row:?} is not on the page");
            compared += 1;
        }
    }
    assert!(compared > 20);
    let totals = md_table(&md, "## Recovery report");
    let recover_total = fen(&totals[0][2]);
    let pay_total = fen(&totals[1][2]);
    assert!(recover_total > 0 && pay_total > 0, "{totals:?}");

    // Each institution's chart: its name and code, the Markdown's numbers in its caption, and bars
    // that add up to them; all charts together to the report's totals.
    let (mut charted_recover, mut charted_pay) = (0, 0);
    for (row, chart) in recovery_rows.iter().zip(&charts) {
        let (code, name) = (&row[0], &row[1]);
        assert_eq!(name, &r.names[code], "the Markdown names the institution");
        let caption = text(elements(chart, "figcaption")[0]);
        let plural = |n: &str| if n == "1" { "line" } else { "lines" };
        let expected = format!(
            "{name} ({code}): to recover {} {}, {} yuan; to pay {} {}, {} yuan",
            row[2],
            plural(&row[2]),
            row[3],
            row[4],
            plural(&row[4]),
            row[5]
        );
        assert_eq!(caption, expected);
        let sum = |class: &str| -> i64 {
            elements(chart, "text").iter().filter(|t| attr(t, "class") == Some(class)).map(|t| fen(&text(t))).sum()
        };
        assert_eq!((sum("value recover"), sum("value pay")), (fen(&row[3]), fen(&row[5])), "{caption}");
        charted_recover += fen(&row[3]);
        charted_pay += fen(&row[5]);
    }
    assert!(recovery_rows.len() < 50, "the day's changes fit in the 50 charts");
    assert_eq!((charted_recover, charted_pay), (recover_total, pay_total));
    // The by-reason chart's numbers are the Markdown's.
    let by_reason: BTreeMap<String, i64> =
        md_table(&md, "## By reason").iter().map(|r| (shown(&r[0]), fen(&r[3]))).collect();
    let chart = kind("by-reason")[0];
    let bars: Vec<(String, String, i64)> = elements(chart, "g")
        .into_iter()
        .filter(|g| attr(g, "class") == Some("row"))
        .map(|g| {
            // The whole label: the drawn one may be cut.
            let label = elements(g, "title").into_iter().next().map(text);
            let rect = elements(g, "rect")[0];
            let value =
                elements(g, "text").into_iter().find(|t| attr(t, "class").is_some_and(|c| c.starts_with("value")));
            (label.unwrap(), attr(rect, "fill").unwrap().to_owned(), fen(&text(value.unwrap())))
        })
        .collect();
    for (label, _, value) in &bars {
        assert_eq!(Some(value), by_reason.get(label), "{label}");
    }

    // Accepted emergency overrides in a colour of their own, named in a legend.
    let fill_of = |label: &str| bars.iter().find(|b| b.0 == label).map(|b| b.1.clone());
    let override_fill = fill_of("EMERGENCY_OVERRIDE").expect("the day has emergency overrides");
    let rejected: BTreeSet<String> = bars.iter().filter(|b| b.0 != "EMERGENCY_OVERRIDE").map(|b| b.1.clone()).collect();
    assert!(!rejected.is_empty());
    assert!(!rejected.contains(&override_fill), "overrides drawn in a rejection's colour {override_fill}");
    let legend: Vec<(String, String)> = elements(chart, "g")
        .into_iter()
        .filter(|g| attr(g, "class") == Some("legend"))
        .map(|g| (attr(elements(g, "rect")[0], "fill").unwrap().to_owned(), text(g)))
        .collect();
    assert!(legend.contains(&(override_fill.clone(), "accepted: emergency override".to_owned())), "{legend:?}");
    assert!(rejected.iter().all(|f| legend.contains(&(f.clone(), "rejected".to_owned()))), "{legend:?}");

    // Institutions by name and code in the largest-rejections chart too.
    let top = kind("top-institutions")[0];
    let labels: Vec<String> = elements(top, "title").into_iter().map(text).collect();
    assert!(!labels.is_empty());
    for l in &labels {
        let (name, code) = l.trim_end_matches(')').split_once(" (").unwrap_or_else(|| panic!("{l:?}: no name"));
        assert_eq!(r.names.get(code), Some(&name.to_owned()), "{l}");
    }

    // Fonts for Chinese text named for the page and for the charts' text.
    let stack =
        "'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', 'PingFang SC', sans-serif";
    let style = text(elements(&dom, "style")[0]);
    assert!(style.contains(&format!("body,svg text{{font-family:{stack}}}")), "{style}");
    assert!(elements(&dom, "svg").iter().all(|s| attr(s, "font-family") == Some(stack)));
    assert!(dom.contains("医保发〔2024〕23号"), "the profile's title is on the page");

    // Printed: A4 pages, with the Chinese text set in a CJK font, and charts that scale to the page.
    assert!(style.contains("@page{size:A4"), "{style}");
    assert!(style.contains("figure,tr,blockquote{break-inside:avoid"), "{style}");
    assert!(elements(&dom, "svg").iter().all(|s| attr(s, "viewBox").is_some()), "a chart that cannot scale");
    let pdf = r.path("report.pdf");
    run_chromium(
        &scratch,
        &r.path("report.html"),
        &[format!("--print-to-pdf={}", pdf.display()), "--no-pdf-header-footer".into()],
    );
    let pdf = std::fs::read(&pdf).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let ascii = String::from_utf8_lossy(&pdf);
    assert!(ascii.contains("NotoSansCJK"), "the printed page embeds no CJK font");
    // A4 is 210 × 297 mm: 595 × 842 points (Chromium writes 594.96 × 841.92); its default is Letter.
    let pages: Vec<Vec<f64>> = ascii
        .split("/MediaBox [")
        .skip(1)
        .map(|b| b.split(']').next().unwrap_or_default().split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .collect();
    assert!(pages.len() > 1, "the report prints on several pages");
    for p in &pages {
        assert!(p.len() == 4 && (p[2] - 595.0).abs() < 1.0 && (p[3] - 842.0).abs() < 1.0, "not A4: {p:?}");
    }
}
