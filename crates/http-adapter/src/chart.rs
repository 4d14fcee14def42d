//! Draws a [`WalChart`] as SVG with plotters: retained WAL per slot and WAL on disk over time,
//! a byte axis in binary units, a UTC time axis, the alert thresholds as dashed lines, failed
//! samples as shaded bands, and a legend naming every line.

use chrono::{DateTime, Utc};
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;
use rosetta_domain::{ChartLine, WalChart, format_bytes};

/// The chart's size in pixels, and how many points per line it can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChartSize {
    pub width: u32,
    pub height: u32,
}

/// Room around the plot: margin on every side, byte labels on the left, time labels below.
const MARGIN: u32 = 12;
const Y_LABEL_AREA: u32 = 84;
const X_LABEL_AREA: u32 = 40;
const CAPTION_SIZE: u32 = 16;

impl ChartSize {
    /// The width of the plotting area: one bucket (one point per line at most) per pixel.
    pub(crate) fn points(self) -> u32 {
        self.width.saturating_sub(Y_LABEL_AREA + 2 * MARGIN).max(1)
    }
}

/// Line colours of slots, in legend order (cycled); none of them is a threshold's colour.
const SLOT_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(0, 0, 128),
];
/// WAL on disk.
pub(crate) const WAL_ON_DISK_COLOUR: RGBColor = RGBColor(127, 127, 127);
/// The warning threshold.
pub(crate) const WARNING_COLOUR: RGBColor = RGBColor(230, 159, 0);
/// The critical threshold.
pub(crate) const CRITICAL_COLOUR: RGBColor = RGBColor(214, 39, 40);

/// The colour of the `index`-th slot line.
pub(crate) fn slot_colour(index: usize) -> RGBColor {
    SLOT_COLOURS[index % SLOT_COLOURS.len()]
}

/// What can go wrong drawing: only writing to the in-memory SVG, i.e. a bug.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub(crate) struct DrawError(String);

fn failed<E: std::fmt::Debug>(error: E) -> DrawError {
    DrawError(format!("{error:?}"))
}

/// `chart` as an SVG document of `size`, titled `title`.
pub(crate) fn render_svg(chart: &WalChart, size: ChartSize, title: &str) -> Result<String, DrawError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (size.width, size.height)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let (x_from, x_to) = (millis(chart.window.from()), millis(chart.window.to()));
        let (top, byte_ticks) = byte_ticks(chart.max_bytes());
        let time_ticks = time_ticks(x_from, x_to, size.points());
        let span = x_to - x_from;
        let mut plot = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", CAPTION_SIZE))
            .margin(MARGIN)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d((x_from..x_to).with_key_points(time_ticks), (0..top).with_key_points(byte_ticks))
            .map_err(failed)?;
        plot.configure_mesh()
            .x_desc("time (UTC)")
            .x_label_formatter(&|x| time_label(*x, span))
            .y_label_formatter(&|y| format_bytes(*y))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(230, 230, 230))
            .draw()
            .map_err(failed)?;

        // Buckets in which every attempt failed: a gap in every line, shaded so it reads as one.
        let bucket_millis = (span / i64::from(chart.window.buckets())).max(1);
        let mut failed_labelled = false;
        for bucket in &chart.failed_buckets {
            let start = x_from + i64::from(*bucket) * bucket_millis;
            let band = Rectangle::new([(start, 0), (start + bucket_millis, top)], CRITICAL_COLOUR.mix(0.12).filled());
            let drawn = plot.draw_series(std::iter::once(band)).map_err(failed)?;
            if !failed_labelled {
                failed_labelled = true;
                drawn
                    .label("sampling failed")
                    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], CRITICAL_COLOUR.mix(0.12).filled()));
            }
        }

        draw_line(&mut plot, &chart.wal_on_disk, WAL_ON_DISK_COLOUR)?;
        for (index, line) in chart.slots.iter().enumerate() {
            draw_line(&mut plot, line, slot_colour(index))?;
        }
        let thresholds = [
            ("warning", chart.thresholds.warning, WARNING_COLOUR),
            ("critical", chart.thresholds.critical, CRITICAL_COLOUR),
        ];
        for (name, threshold, colour) in thresholds {
            let Some(bytes) = threshold else { continue };
            let style = colour.stroke_width(2);
            plot.draw_series(DashedLineSeries::new([(x_from, bytes), (x_to, bytes)], 8, 6, style))
                .map_err(failed)?
                .label(format!("{name} {}", format_bytes(bytes)))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
        if chart.is_empty() {
            let centre = (i32::try_from(size.width / 2).unwrap_or(0), i32::try_from(size.height / 2).unwrap_or(0));
            let style = ("sans-serif", 18).into_text_style(&root).color(&RGBColor(90, 90, 90)).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            root.draw_text("No samples in this range", &style, centre).map_err(failed)?;
        } else {
            plot.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(failed)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

type Plot<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::combinators::WithKeyPoints<plotters::coord::types::RangedCoordi64>,
        plotters::coord::combinators::WithKeyPoints<plotters::coord::types::RangedCoordu64>,
    >,
>;

/// One polyline per run of `line` (a lone point gets a dot); the first run carries the legend.
fn draw_line(plot: &mut Plot<'_, '_>, line: &ChartLine, colour: RGBColor) -> Result<(), DrawError> {
    let style = colour.stroke_width(2);
    for (index, run) in line.segments.iter().enumerate() {
        let points: Vec<(i64, u64)> = run.iter().map(|point| (millis(point.at), point.bytes)).collect();
        let drawn = if let [single] = points[..] {
            plot.draw_series(std::iter::once(Circle::new(single, 2, colour.filled()))).map_err(failed)?
        } else {
            plot.draw_series(LineSeries::new(points, style)).map_err(failed)?
        };
        if index == 0 {
            drawn.label(line.name.clone()).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
    }
    Ok(())
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The top of the byte axis and its ticks: multiples of a power of two in the largest binary
/// unit below the maximum, at most six of them, the top a tick above the maximum.
pub(crate) fn byte_ticks(max: u64) -> (u64, Vec<u64>) {
    let max = max.max(1);
    let unit = [1u64 << 40, 1 << 30, 1 << 20, 1 << 10, 1].into_iter().find(|unit| *unit <= max).unwrap_or(1);
    let step = (0..20).map(|shift| unit.saturating_mul(1 << shift)).find(|step| max / step < 5).unwrap_or(u64::MAX / 8);
    let top = (max / step + 1).saturating_mul(step);
    let ticks = (0..).map(|n: u64| n.saturating_mul(step)).take_while(|tick| *tick <= top).collect();
    (top, ticks)
}

/// Time ticks: a whole number of minutes, hours or days apart (UTC), about one per 120 pixels.
pub(crate) fn time_ticks(from: i64, to: i64, pixels: u32) -> Vec<i64> {
    const MINUTE: i64 = 60_000;
    const STEPS: [i64; 16] = [
        MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        60 * MINUTE,
        2 * 60 * MINUTE,
        3 * 60 * MINUTE,
        6 * 60 * MINUTE,
        12 * 60 * MINUTE,
        24 * 60 * MINUTE,
        2 * 24 * 60 * MINUTE,
        7 * 24 * 60 * MINUTE,
        14 * 24 * 60 * MINUTE,
        30 * 24 * 60 * MINUTE,
        90 * 24 * 60 * MINUTE,
    ];
    let wanted = i64::from((pixels / 120).max(2));
    let span = (to - from).max(1);
    let step = STEPS.into_iter().find(|step| span / step <= wanted).unwrap_or(STEPS[STEPS.len() - 1]);
    let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
    (0..).map(|n| first + n * step).take_while(|tick| *tick <= to).collect()
}

/// A tick's label: the time of day for ranges up to two days, else the date.
fn time_label(millis: i64, span: i64) -> String {
    let Some(at) = DateTime::<Utc>::from_timestamp_millis(millis) else { return String::new() };
    if span <= 2 * 86_400_000 { at.format("%m-%d %H:%M").to_string() } else { at.format("%Y-%m-%d").to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ticks_are_binary_multiples_above_the_maximum() {
        assert_eq!(byte_ticks(0), (2, vec![0, 1, 2]));
        let (top, ticks) = byte_ticks(300 << 20);
        assert!(top > 300 << 20 && ticks.len() <= 7, "{top} {ticks:?}");
        assert!(ticks.iter().all(|tick| tick % (1 << 20) == 0), "{ticks:?}");
        assert_eq!(ticks.last(), Some(&top));
        let (top, ticks) = byte_ticks(3 << 30);
        assert_eq!((top, ticks), (4 << 30, vec![0, 1 << 30, 2 << 30, 3 << 30, 4 << 30]));
    }

    #[test]
    fn time_ticks_fall_on_whole_steps_inside_the_range() {
        let hour = 3_600_000;
        let ticks = time_ticks(10 * hour + 1, 34 * hour, 800);
        assert!(ticks.len() >= 2 && ticks.len() <= 7, "{ticks:?}");
        assert!(ticks.iter().all(|t| t % hour == 0 && *t > 10 * hour && *t <= 34 * hour), "{ticks:?}");
        assert_eq!(time_label(34 * hour, 24 * hour), "01-02 10:00");
        assert_eq!(time_label(34 * hour, 30 * 24 * hour), "1970-01-02");
    }
}
