//! The review report as one self-contained HTML page (inline SVG, no scripts, no external files), to
//! be read top to bottom and printed: the Markdown report rendered section by section, with each chart
//! placed after the section it illustrates — so the title comes first, the recovery report's chart of
//! each institution follows its table, and the amounts by reason follow theirs.
//!
//! What a reader sees is part of the contract, and `tests/html_report.rs` checks it in headless
//! Chromium: institutions are named as the institution table names them (with their code), accepted
//! emergency overrides are drawn in their own colour with a legend, the page and the SVG text name
//! fonts for Chinese text, and the print style keeps charts inside an A4 page and figures and table
//! rows whole.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use claimgate::record::{InstitutionCode, Reason};

use super::recovery::{Money, Recovery};
use super::report::{RunInfo, Stats, Tally, markdown, yuan};

/// Fonts for the page and the charts' text, CJK first: a viewer whose default font has no Chinese
/// glyphs would otherwise see boxes for 医保发〔2024〕23号 and the institutions' names. Single quotes,
/// so the same text serves the CSS and an SVG attribute.
pub const FONTS: &str =
    "'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', 'PingFang SC', sans-serif";

/// What a bar stands for; each has its colour and a legend entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Series {
    /// Rejected lines.
    Rejected,
    /// Accepted under an emergency (rescue) override.
    Override,
    /// Accepted inline, rejected now.
    Recover,
    /// Rejected inline, accepted now.
    Pay,
}

impl Series {
    fn colour(self) -> &'static str {
        match self {
            Series::Rejected | Series::Recover => "#b3261e",
            Series::Override => "#1f5fa8",
            Series::Pay => "#2e7d32",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Series::Rejected => "rejected",
            Series::Override => "override",
            Series::Recover => "recover",
            Series::Pay => "pay",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Series::Rejected => "rejected",
            Series::Override => "accepted: emergency override",
            Series::Recover => "to recover (accepted inline, rejected now)",
            Series::Pay => "to pay (rejected inline, accepted now)",
        }
    }
}

/// One labelled group of bars.
struct Row {
    label: String,
    bars: Vec<(Series, i128)>,
}

/// A horizontal bar chart, scaled to its largest bar; `kind` names it for readers of the page's markup
/// (`data-chart`).
struct Chart<'a> {
    kind: &'a str,
    caption: String,
    rows: Vec<Row>,
}

const CHART_WIDTH: usize = 860;
const LABEL_WIDTH: usize = 290;
const BAR_WIDTH: usize = 420;
const BAR_HEIGHT: usize = 16;
/// A label's width budget, in half-ems of the 12 px font (about 7 px): a Latin character takes one, a
/// Chinese one two. Past it the label is cut; the whole label is the bar's tooltip and is in the table
/// above.
const LABEL_UNITS: usize = 40;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn units(c: char) -> usize {
    if c.is_ascii() { 1 } else { 2 }
}

fn clip(label: &str) -> String {
    if label.chars().map(units).sum::<usize>() <= LABEL_UNITS {
        return label.to_owned();
    }
    let mut used = units('…');
    let mut out: String = label
        .chars()
        .take_while(|c| {
            used += units(*c);
            used <= LABEL_UNITS
        })
        .collect();
    out.push('…');
    out
}

impl Chart<'_> {
    fn render(&self, out: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        let mut series: Vec<Series> = self.rows.iter().flat_map(|r| r.bars.iter().map(|b| b.0)).collect();
        series.sort();
        series.dedup();
        let max = self.rows.iter().flat_map(|r| r.bars.iter().map(|b| b.1)).max().unwrap_or(0).max(1);
        let legend_h = 24;
        let group_gap = 8;
        let height: usize =
            legend_h + self.rows.iter().map(|r| r.bars.len().max(1) * (BAR_HEIGHT + 2) + group_gap).sum::<usize>() + 4;
        let caption = escape(&self.caption);
        let _ = write!(
            out,
            r#"<figure class="chart" data-chart="{}"><figcaption>{caption}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" height="{height}" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{caption}" font-family="{FONTS}" font-size="12">"#,
            escape(self.kind),
        );
        // The legend: one swatch per series the chart draws.
        let mut x = LABEL_WIDTH;
        for s in &series {
            let _ = write!(
                out,
                r#"<g class="legend"><rect x="{x}" y="4" width="12" height="12" fill="{}" class="{}"/><text x="{}" y="15">{}</text></g>"#,
                s.colour(),
                s.class(),
                x + 16,
                escape(s.legend())
            );
            x += 24 + s.legend().chars().count() * 6;
        }
        let mut y = legend_h;
        for row in &self.rows {
            let group_h = row.bars.len().max(1) * (BAR_HEIGHT + 2);
            let _ = write!(
                out,
                r#"<g class="row"><title>{}</title><text class="label" x="{}" y="{}" text-anchor="end">{}</text>"#,
                escape(&row.label),
                LABEL_WIDTH - 6,
                y + group_h / 2 + 4,
                escape(&clip(&row.label))
            );
            for (i, (s, fen)) in row.bars.iter().enumerate() {
                let by = y + i * (BAR_HEIGHT + 2);
                // Display only: the widths are rounded, the numbers beside them are exact.
                let w = ((*fen).max(0) as f64 / max as f64 * BAR_WIDTH as f64).round() as usize;
                let _ = write!(
                    out,
                    r#"<rect class="bar {}" x="{LABEL_WIDTH}" y="{by}" width="{w}" height="{BAR_HEIGHT}" fill="{}"/><text class="value {}" x="{}" y="{}">{}</text>"#,
                    s.class(),
                    s.colour(),
                    s.class(),
                    LABEL_WIDTH + w + 6,
                    by + BAR_HEIGHT - 4,
                    yuan(*fen)
                );
            }
            out.push_str("</g>");
            y += group_h + group_gap;
        }
        out.push_str("</svg></figure>\n");
    }
}

/// "name (code)", or the code where the institution table gives no name.
fn institution_label(info: &RunInfo, code: InstitutionCode) -> String {
    match info.names.get(&code) {
        Some(name) if !name.trim().is_empty() => format!("{} ({code})", name.trim()),
        _ => code.to_string(),
    }
}

/// Amounts by reason, overrides apart from rejections.
fn by_reason_chart(stats: &Stats) -> Chart<'static> {
    let rows = Reason::ALL
        .iter()
        .filter(|r| **r != Reason::Ok && stats.by_reason[r.index()].lines > 0)
        .map(|r| {
            let series = if r.accepts() { Series::Override } else { Series::Rejected };
            Row { label: r.as_str().to_owned(), bars: vec![(series, stats.by_reason[r.index()].fen)] }
        })
        .collect();
    Chart {
        kind: "by-reason",
        caption: "Amount by reason, yuan: rejections, and the lines accepted under an emergency override".into(),
        rows,
    }
}

/// Institutions shown in the rejected-amount chart.
const TOP_INSTITUTIONS: usize = 15;

fn top_institutions_chart(stats: &Stats, info: &RunInfo) -> Chart<'static> {
    let mut insts: Vec<_> = stats.by_institution.iter().filter(|(_, t)| t.rejected.lines > 0).collect();
    insts.sort_by(|a, b| b.1.rejected.fen.cmp(&a.1.rejected.fen).then(a.0.cmp(b.0)));
    let rows = insts
        .iter()
        .take(TOP_INSTITUTIONS)
        .map(|(c, t)| Row { label: institution_label(info, **c), bars: vec![(Series::Rejected, t.rejected.fen)] })
        .collect();
    Chart {
        kind: "top-institutions",
        caption: format!(
            "The {} institutions with the largest rejected amounts, yuan",
            insts.len().min(TOP_INSTITUTIONS)
        ),
        rows,
    }
}

/// Institutions charted in the recovery report: as many as its table lists.
const RECOVERY_INSTITUTIONS: usize = 50;
/// Practitioners drawn per institution; the rest make one row, so the bars add up to the institution's
/// totals.
const PRACTITIONERS_PER_CHART: usize = 8;

fn lines(t: Tally) -> String {
    format!("{} line{}", t.lines, if t.lines == 1 { "" } else { "s" })
}

/// One chart per institution of the recovery report: its money to recover and to pay, by practitioner.
fn recovery_charts(stats: &Stats, info: &RunInfo, out: &mut String) {
    let r = Recovery::of(stats, info);
    let mut people: BTreeMap<InstitutionCode, Vec<(&str, Money)>> = BTreeMap::new();
    // `by_practitioner` is sorted, largest recovery first: each institution's list stays so.
    for ((code, inst), m, _) in &r.by_practitioner {
        people.entry(*inst).or_default().push((code.as_str(), *m));
    }
    if r.by_institution.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h3>By institution, charts</h3>\n<p>Each institution's money to recover and to pay, by practitioner (the largest {PRACTITIONERS_PER_CHART}; the others together).</p>"
    );
    for (inst, total) in r.by_institution.iter().take(RECOVERY_INSTITUTIONS) {
        let list = people.get(inst).map(Vec::as_slice).unwrap_or_default();
        let bars = |m: &Money| {
            let mut b = Vec::new();
            if m.recover.lines > 0 {
                b.push((Series::Recover, m.recover.fen));
            }
            if m.pay.lines > 0 {
                b.push((Series::Pay, m.pay.fen));
            }
            b
        };
        let mut rows: Vec<Row> = list
            .iter()
            .take(PRACTITIONERS_PER_CHART)
            .map(|(code, m)| Row { label: (*code).to_owned(), bars: bars(m) })
            .collect();
        if list.len() > PRACTITIONERS_PER_CHART {
            let mut rest = Money::default();
            for (_, m) in &list[PRACTITIONERS_PER_CHART..] {
                rest.recover.lines += m.recover.lines;
                rest.recover.fen += m.recover.fen;
                rest.pay.lines += m.pay.lines;
                rest.pay.fen += m.pay.fen;
            }
            rows.push(Row { label: format!("{} others", list.len() - PRACTITIONERS_PER_CHART), bars: bars(&rest) });
        }
        Chart {
            kind: "recovery-institution",
            caption: format!(
                "{}: to recover {}, {} yuan; to pay {}, {} yuan",
                institution_label(info, *inst),
                lines(total.recover),
                yuan(total.recover.fen),
                lines(total.pay),
                yuan(total.pay.fen)
            ),
            rows,
        }
        .render(out);
    }
}

const STYLE: &str = "\
body{max-width:72em;margin:2em auto;padding:0 1em;line-height:1.4}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}\
figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}\
figure svg{display:block;width:100%;max-width:860px;height:auto}\
@page{size:A4;margin:12mm}\
@media print{\
body{max-width:none;margin:0;padding:0;font-size:9pt}\
figure,tr,blockquote{break-inside:avoid;page-break-inside:avoid}\
h1,h2,h3,figcaption{break-after:avoid;page-break-after:avoid}\
thead{display:table-header-group}\
table{width:100%}td,th{overflow-wrap:anywhere}\
figure svg{max-width:100%}\
}";

/// The HTML page.
pub fn html(stats: &Stats, info: &RunInfo) -> String {
    let md = markdown(stats, info);
    let mut page = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>claimgate review report</title>\
         <style>body,svg text{{font-family:{FONTS}}}{STYLE}</style></head><body>\n"
    );
    // The report, section by section (a section begins at a `##` or `###` heading); each chart after
    // the section it illustrates.
    let mut h2 = String::new();
    for section in sections(&md) {
        let heading = section.lines().next().unwrap_or_default();
        if let Some(h) = heading.strip_prefix("## ") {
            h2 = h.trim().to_owned();
        }
        let parser = pulldown_cmark::Parser::new_ext(section, pulldown_cmark::Options::ENABLE_TABLES);
        pulldown_cmark::html::push_html(&mut page, parser);
        match (h2.as_str(), heading.trim()) {
            ("Recovery report", "### By institution") => recovery_charts(stats, info, &mut page),
            ("By reason", "## By reason") => by_reason_chart(stats).render(&mut page),
            ("By institution", "## By institution") => top_institutions_chart(stats, info).render(&mut page),
            _ => {}
        }
    }
    page.push_str("</body></html>\n");
    page
}

/// The Markdown split before each `##` / `###` heading line.
fn sections(md: &str) -> Vec<&str> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in md.split_inclusive('\n') {
        if offset > 0 && (line.starts_with("## ") || line.starts_with("### ")) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.push(md.len());
    starts.windows(2).map(|w| &md[w[0]..w[1]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_at_second_and_third_level_headings_only() {
        let md = "# T\n\ntext\n## A\n\n| a |\n### B\nx\n#### C\n## D\n";
        let s = sections(md);
        assert_eq!(s, vec!["# T\n\ntext\n", "## A\n\n| a |\n", "### B\nx\n#### C\n", "## D\n"]);
        assert_eq!(s.concat(), md);
    }

    #[test]
    fn long_labels_are_clipped_by_width_chinese_characters_counting_double() {
        let name = "淮安市第一人民医院附属第二医院和另一家很长名字的医院 (H32080000001)";
        let c = clip(name);
        assert_eq!(c, "淮安市第一人民医院附属第二医院和另一家…");
        assert_eq!(clip("PRACTITIONER_NOT_REGISTERED_HERE"), "PRACTITIONER_NOT_REGISTERED_HERE");
        assert_eq!(clip("测试市第12人民医院 (H63010200000)"), "测试市第12人民医院 (H63010200000)");
        assert_eq!(clip(&"x".repeat(41)), "x".repeat(38) + "…");
    }
}
