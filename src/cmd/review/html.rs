//! The review report as one self-contained HTML page: the Markdown report rendered, with bar charts
//! (inline SVG, no scripts, no external files) of the amounts by reason and of the institutions with the
//! largest rejected amounts.

use std::fmt::Write as _;

use claimgate::record::Reason;

use super::report::{RunInfo, Stats, markdown, yuan};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart: one bar per (label, fen) pair, scaled to the largest.
fn bars(title: &str, rows: &[(String, i128)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let (label_w, bar_w, row_h) = (300, 420, 22);
    let height = 30 + rows.len() * row_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" role="img" font-family="sans-serif" font-size="12">"#,
        escape(title),
        label_w + bar_w + 160
    );
    for (i, (label, fen)) in rows.iter().enumerate() {
        let y = 10 + i * row_h;
        let w = ((*fen).max(0) as f64 / max as f64 * bar_w as f64).round() as i64;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{}" y="{}" width="{w}" height="{}" fill="#b33"/><text x="{}" y="{}">{}</text>"##,
            label_w - 6,
            y + 15,
            escape(label),
            label_w,
            y + 3,
            row_h - 6,
            label_w as i64 + w + 6,
            y + 15,
            yuan(*fen)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

/// The HTML page.
pub fn html(stats: &Stats, info: &RunInfo) -> String {
    let by_reason: Vec<(String, i128)> = Reason::ALL
        .iter()
        .filter(|r| **r != Reason::Ok && stats.by_reason[r.index()].lines > 0)
        .map(|r| (r.as_str().to_owned(), stats.by_reason[r.index()].fen))
        .collect();
    let mut insts: Vec<_> = stats.by_institution.iter().filter(|(_, t)| t.rejected.lines > 0).collect();
    insts.sort_by(|a, b| b.1.rejected.fen.cmp(&a.1.rejected.fen).then(a.0.cmp(b.0)));
    let top: Vec<(String, i128)> = insts.iter().take(15).map(|(c, t)| (c.to_string(), t.rejected.fen)).collect();

    let md = markdown(stats, info);
    let mut body = String::new();
    let parser = pulldown_cmark::Parser::new_ext(&md, pulldown_cmark::Options::ENABLE_TABLES);
    pulldown_cmark::html::push_html(&mut body, parser);

    let mut page = String::from(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>claimgate review report</title>\
         <style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}\
         td:nth-child(n+2){text-align:right}figure{margin:1em 0}figcaption{font-weight:bold}</style></head><body>\n",
    );
    page.push_str(&bars("Amount by reason, yuan (accepted overrides and rejections)", &by_reason));
    page.push_str(&bars("Institutions with the largest rejected amounts, yuan", &top));
    page.push_str(&body);
    page.push_str("</body></html>\n");
    page
}
