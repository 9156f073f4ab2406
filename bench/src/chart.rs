//! The handoff-latency chart: one panel per queue length, the cumulative distribution of each
//! method's handoffs on a logarithmic latency axis. Rendered with plotters into an RGB buffer
//! (text through ab_glyph with a TTF loaded at run time) and written as PNG.

use crate::figures::handoff::Handoff;
use crate::per_method::Method;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;

/// DejaVu Sans from Debian's fonts-dejavu-core (`make bench` installs it);
/// `MONTH_LOCK_BENCH_FONT` names another TTF.
const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";

/// Reads and registers the font (for the whole process) that [`handoff_chart`] uses.
pub fn load_font() -> Result<(), String> {
    let path = std::env::var("MONTH_LOCK_BENCH_FONT").unwrap_or_else(|_| DEFAULT_FONT.into());
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read the chart font {path}: {e} (install fonts-dejavu-core: `make bench` does)"
        )
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| format!("{path} is not a usable TrueType font"))
}

fn color(method: Method) -> RGBColor {
    match method {
        Method::MonthLock => RGBColor(0xd6, 0x27, 0x28),
        Method::Queued => RGBColor(0x1f, 0x77, 0xb4),
        Method::Polling => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// One panel per figure-1 result, from its raw samples.
pub fn handoff_chart(path: &Path, cases: &[Handoff]) -> Result<(), Box<dyn Error>> {
    let (w, h) = (1800u32, 620u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let all = cases
        .iter()
        .flat_map(|h| h.samples_ms.iter().flat_map(|(_, v)| v.iter().copied()));
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades around the data.
    let x_lo = 10f64.powf(lo.max(1e-3).log10().floor());
    let x_hi = 10f64.powf(hi.max(x_lo * 10.0).log10().ceil());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            "month_lock handoff latency: holder's release sent → waiter's call returns (cumulative, log scale)",
            (FONT, 26),
        )?;
        let panels = root.split_evenly((1, cases.len()));
        for (panel, case) in panels.iter().zip(cases) {
            let waiters = case.queued_waiters;
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!(
                        "{waiters} queued waiter{}",
                        if waiters == 1 { "" } else { "s" }
                    ),
                    (FONT, 22),
                )
                .margin(14)
                .x_label_area_size(50)
                .y_label_area_size(60)
                .build_cartesian_2d((x_lo..x_hi).log_scale(), 0f64..1f64)?;
            chart
                .configure_mesh()
                .x_desc("handoff latency (ms)")
                .y_desc("fraction of handoffs ≤ x")
                .label_style((FONT, 16))
                .axis_desc_style((FONT, 17))
                .x_label_formatter(&|v| {
                    if *v >= 1.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v}")
                    }
                })
                .y_label_formatter(&|v| format!("{v:.1}"))
                .draw()?;
            for (method, samples) in case.samples_ms.iter() {
                let mut s = samples.clone();
                s.sort_by(f64::total_cmp);
                let n = s.len() as f64;
                let mut points = Vec::with_capacity(s.len() * 2 + 1);
                points.push((s[0], 0.0));
                for (i, v) in s.iter().enumerate() {
                    points.push((*v, i as f64 / n));
                    points.push((*v, (i + 1) as f64 / n));
                }
                let c = color(method);
                chart
                    .draw_series(LineSeries::new(points, c.stroke_width(3)))?
                    .label(method.label())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font((FONT, 16))
                .draw()?;
        }
        root.present()?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&buf)?;
    writer.finish()?;
    Ok(())
}
