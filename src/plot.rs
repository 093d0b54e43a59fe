//! The validation curve of a run as an SVG, for the README and for watching a run.

use std::path::Path;

use plotters::prelude::*;

/// One point of a run's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotPoint {
    /// Training steps done.
    pub iteration: usize,
    /// Validation accuracy, in percent.
    pub accuracy: f64,
    /// Mean training loss since the previous point.
    pub loss: f64,
}

/// Draws validation accuracy (and mean training loss on a second axis) against steps, under
/// `title`.
pub fn validation_svg(
    path: &Path,
    title: &str,
    history: &[PlotPoint],
) -> Result<(), Box<dyn std::error::Error>> {
    let last = history.last().map_or(1, |p| p.iteration).max(1) as f64;
    let min_accuracy = history.iter().map(|p| p.accuracy).fold(100.0, f64::min);
    let floor = (min_accuracy / 10.0).floor() * 10.0;
    let max_loss = history.iter().map(|p| p.loss).fold(0.0, f64::max).max(1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .right_y_label_area_size(48)
            .build_cartesian_2d(0.0..last, floor..100.0)?
            .set_secondary_coord(0.0..last, 0.0..max_loss * 1.05);
        chart
            .configure_mesh()
            .x_desc("training steps")
            .y_desc("accuracy (%)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(RGBColor(242, 242, 242))
            .draw()?;
        chart.configure_secondary_axes().y_desc("training loss").draw()?;
        let accuracy: Vec<(f64, f64)> = history.iter().map(|p| (p.iteration as f64, p.accuracy)).collect();
        chart
            .draw_series(LineSeries::new(accuracy.iter().copied(), BLUE.stroke_width(2)))?
            .label("validation accuracy")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        chart.draw_series(accuracy.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))?;
        chart
            .draw_secondary_series(LineSeries::new(
                history.iter().map(|p| (p.iteration as f64, p.loss)),
                RED.mix(0.6).stroke_width(1),
            ))?
            .label("training loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.mix(0.6)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
    }
    oneshot_core::write_atomically(path, svg.as_bytes())?;
    Ok(())
}
