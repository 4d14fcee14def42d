//! `GET /wal-monitor/sources/{id}/chart.svg`: the SVG drawn from what the WAL monitor service
//! returns, parsed as XML; the query's validation; the error bodies.

use actix_web::http::{Method, StatusCode};
use rosetta_domain::{ChartHistory, ChartThresholds, ChartWindow, SampledBucket, SlotBucket, SourceId, WalChart};
use rosetta_ports::EntityKind;
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::wal::ChartRequest;

use super::*;
use crate::chart::{CRITICAL_COLOUR, WARNING_COLOUR, slot_colour};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// A history over the requested window: slot `cdc_orders` growing to a spike in one bucket,
/// slot `backup` flat, WAL on disk, the tenth bucket failed; thresholds of 1 and 2 GiB.
fn chart(request: ChartRequest) -> WalChart {
    let to = request.to.unwrap_or_else(at);
    let from = request.from.unwrap_or(to - ChartRequest::DEFAULT_SPAN);
    let window = ChartWindow::new(from, to, request.points).unwrap();
    let buckets = request.points;
    let spike = buckets / 2;
    let samples = (0..buckets)
        .map(|bucket| {
            let failed = bucket == 10;
            SampledBucket {
                bucket,
                succeeded: u32::from(!failed),
                failed: u32::from(failed),
                wal_dir_bytes: (!failed).then_some(512 * MIB),
            }
        })
        .collect();
    let slots = (0..buckets)
        .filter(|bucket| *bucket != 10)
        .flat_map(|bucket| {
            let growing = if bucket == spike { 3 * GIB / 2 } else { u64::from(bucket) * MIB };
            [
                SlotBucket { slot_name: "cdc_orders".into(), bucket, retained_bytes: Some(growing) },
                SlotBucket { slot_name: "backup".into(), bucket, retained_bytes: Some(64 * MIB) },
            ]
        })
        .collect();
    WalChart::new(
        ChartHistory { window, samples, slots },
        ChartThresholds { warning: Some(GIB), critical: Some(2 * GIB) },
    )
}

fn hex(colour: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
}

/// The polylines of `svg` stroked in `colour`, each as its points.
fn polylines(svg: &roxmltree::Document<'_>, colour: &str) -> Vec<Vec<(f64, f64)>> {
    svg.descendants()
        .filter(|node| node.has_tag_name("polyline"))
        .filter(|node| node.attribute("stroke").is_some_and(|stroke| stroke.eq_ignore_ascii_case(colour)))
        .map(|node| {
            node.attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|pair| pair.split_once(','))
                .map(|(x, y)| (x.parse().unwrap(), y.parse().unwrap()))
                .collect()
        })
        .collect()
}

fn texts(svg: &roxmltree::Document<'_>) -> Vec<String> {
    svg.descendants()
        .filter(|node| node.has_tag_name("text"))
        .filter_map(|node| node.text())
        .map(|t| t.trim().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_chart_is_svg_with_a_line_per_slot_a_legend_thresholds_and_binary_units() {
    let mut mocks = Mocks::default();
    mocks
        .wal_monitor
        .expect_wal_chart()
        .withf(|id, request| *id == SourceId::new(3) && request.from.is_none() && request.to.is_none())
        .returning(|_, request| Ok(chart(request)));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/3/chart.svg?width=640&height=300")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("image/svg+xml"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let text = reply.text();
    std::fs::write(std::env::temp_dir().join("rosetta-chart-test.svg"), &text).ok();
    let svg = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("not XML ({e}): {text}"));
    let root = svg.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!((root.attribute("width"), root.attribute("height")), (Some("640"), Some("300")));

    let labels = texts(&svg);
    for expected in ["cdc_orders", "backup", "WAL on disk", "warning 1.0 GiB", "critical 2.0 GiB", "sampling failed"] {
        assert!(labels.iter().any(|label| label == expected), "legend lacks {expected:?}: {labels:?}");
    }
    for tick in ["0 B", "1.0 GiB", "2.0 GiB"] {
        assert!(labels.iter().any(|label| label == tick), "binary units on the byte axis: {labels:?}");
    }
    assert!(labels.iter().any(|label| label == "time (UTC)"), "{labels:?}");

    // cdc_orders: two runs (the failed bucket breaks it), at most one point per plot pixel,
    // and the spike is the highest point of the chart (the smallest y).
    let points = 640 - 84 - 24;
    let orders = polylines(&svg, &hex(slot_colour(1)));
    let orders: Vec<_> = orders.into_iter().filter(|run| run.len() > 2).collect();
    assert_eq!(orders.len(), 2, "cdc_orders runs: {orders:?}");
    let drawn: usize = orders.iter().map(Vec::len).sum();
    assert!(drawn <= points, "{drawn} points for a {points}-pixel plot");
    assert_eq!(drawn, points - 1, "every sampled bucket but the failed one");
    let top = orders.iter().flatten().map(|(_, y)| *y).fold(f64::MAX, f64::min);
    // (Runs of two points are the legend's samples.)
    let backup = polylines(&svg, &hex(slot_colour(0)));
    let backup: Vec<_> = backup.into_iter().filter(|run| run.len() > 2).collect();
    assert_eq!(backup.len(), 2, "backup runs: {backup:?}");
    assert!(backup.iter().flatten().all(|(_, y)| *y > top), "the spike is above everything else");
    // The thresholds: dashed, so many short horizontal pieces, all at one height each.
    for colour in [WARNING_COLOUR, CRITICAL_COLOUR] {
        let dashes = polylines(&svg, &hex(colour));
        assert!(dashes.len() > 5, "{dashes:?}");
        let heights: std::collections::BTreeSet<i64> = dashes.iter().flatten().map(|(_, y)| *y as i64).collect();
        assert!(heights.len() <= 2, "a horizontal line (legend sample included): {heights:?}");
    }
}

#[actix_web::test]
async fn a_range_without_samples_draws_an_empty_chart_saying_so() {
    let mut mocks = Mocks::default();
    mocks.wal_monitor.expect_wal_chart().returning(|_, request| {
        let window = ChartWindow::new(request.from.unwrap(), request.to.unwrap(), request.points).unwrap();
        Ok(WalChart::new(ChartHistory { window, samples: Vec::new(), slots: Vec::new() }, ChartThresholds::default()))
    });
    let app = start(mocks).await;
    let uri = "/api/v1/wal-monitor/sources/3/chart.svg?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B00:00";
    let reply = send(&app, api(Method::GET, uri)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let text = reply.text();
    let svg = roxmltree::Document::parse(&text).unwrap();
    assert!(texts(&svg).iter().any(|t| t == "No samples in this range"), "{text}");
    assert!(svg.descendants().filter(|n| n.has_tag_name("polyline")).all(|n| {
        let stroke = n.attribute("stroke").unwrap_or_default();
        [slot_colour(0), slot_colour(1)].iter().all(|c| !stroke.eq_ignore_ascii_case(&hex(*c)))
    }));
}

#[actix_web::test]
async fn an_unknown_source_is_404_and_a_bad_query_is_422_naming_the_parameter() {
    let mut mocks = Mocks::default();
    mocks
        .wal_monitor
        .expect_wal_chart()
        .withf(|id, _| *id == SourceId::new(9))
        .returning(|id, _| Err(ServiceError::NotFound { entity: EntityKind::Source, id: id.get() }));
    mocks.wal_monitor.expect_wal_chart().withf(|id, _| *id == SourceId::new(4)).returning(|_, _| {
        Err(ServiceError::InvalidQuery {
            parameter: "from",
            error: ChartWindow::new(at(), at(), 10).unwrap_err().error,
        })
    });
    let app = start(mocks).await;
    send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/9/chart.svg"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
    let reversed =
        send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/4/chart.svg?from=2030-01-01T00:00:00Z")).await;
    let body = reversed.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(body["details"][0]["loc"], serde_json::json!(["query", "from"]), "{body}");
    for (query, parameter) in
        [("width=10", "width"), ("height=99999", "height"), ("from=yesterday", "from"), ("to=1", "to")]
    {
        let reply = send(&app, api(Method::GET, &format!("/api/v1/wal-monitor/sources/4/chart.svg?{query}"))).await;
        let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
        assert_eq!(body["details"][0]["loc"], serde_json::json!(["query", parameter]), "{query}: {body}");
    }
    send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/x/chart.svg"))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
}
