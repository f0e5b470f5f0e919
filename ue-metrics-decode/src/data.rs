//! A metric's data seen through what its five kinds share: the one place that tells them apart
//! (`metric::Data`), for the JSON writer, the summary tables and merging.

use crate::proto::common::v1::KeyValue;
use crate::proto::metrics::v1::{
    metric, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
};

/// The data points of one metric, by point type.
#[derive(Debug, Clone, Copy)]
pub enum Points<'a> {
    /// Gauge and sum points.
    Number(&'a [NumberDataPoint]),
    /// Histogram points.
    Histogram(&'a [HistogramDataPoint]),
    /// Exponential histogram points.
    ExponentialHistogram(&'a [ExponentialHistogramDataPoint]),
    /// Summary points.
    Summary(&'a [SummaryDataPoint]),
}

/// One data point of any type.
#[derive(Debug, Clone, Copy)]
pub enum Point<'a> {
    /// A gauge or sum point.
    Number(&'a NumberDataPoint),
    /// A histogram point.
    Histogram(&'a HistogramDataPoint),
    /// An exponential histogram point.
    ExponentialHistogram(&'a ExponentialHistogramDataPoint),
    /// A summary point.
    Summary(&'a SummaryDataPoint),
}

/// A metric's data: its kind, the fields that set kinds apart, and its points.
#[derive(Debug, Clone, Copy)]
pub struct DataView<'a> {
    /// The OTLP/JSON key of the kind: `gauge`, `sum`, `histogram`, `exponentialHistogram`,
    /// `summary`.
    pub json_name: &'static str,
    /// The kind as tables show it: `gauge`, `counter`, `updown`, `histogram`,
    /// `exp-histogram`, `summary`.
    pub kind: &'static str,
    /// `aggregationTemporality`, for the kinds that have one (sums and histograms).
    pub temporality: Option<i32>,
    /// `isMonotonic`, for sums.
    pub is_monotonic: Option<bool>,
    /// The points.
    pub points: Points<'a>,
}

impl<'a> DataView<'a> {
    /// The view of `data`.
    pub fn of(data: &'a metric::Data) -> DataView<'a> {
        use metric::Data as D;
        let view = |json_name, kind, temporality, is_monotonic, points| DataView {
            json_name,
            kind,
            temporality,
            is_monotonic,
            points,
        };
        match data {
            D::Gauge(g) => view("gauge", "gauge", None, None, Points::Number(&g.data_points)),
            D::Sum(s) => view(
                "sum",
                if s.is_monotonic { "counter" } else { "updown" },
                Some(s.aggregation_temporality),
                Some(s.is_monotonic),
                Points::Number(&s.data_points),
            ),
            D::Histogram(h) => view(
                "histogram",
                "histogram",
                Some(h.aggregation_temporality),
                None,
                Points::Histogram(&h.data_points),
            ),
            D::ExponentialHistogram(h) => view(
                "exponentialHistogram",
                "exp-histogram",
                Some(h.aggregation_temporality),
                None,
                Points::ExponentialHistogram(&h.data_points),
            ),
            D::Summary(s) => view(
                "summary",
                "summary",
                None,
                None,
                Points::Summary(&s.data_points),
            ),
        }
    }

    /// Whether points of `other` may join these in one metric: same kind, temporality and
    /// monotonicity.
    pub fn same_kind(&self, other: &DataView<'_>) -> bool {
        (self.json_name, self.temporality, self.is_monotonic)
            == (other.json_name, other.temporality, other.is_monotonic)
    }

    /// Every point, in order.
    pub fn points(&self) -> impl Iterator<Item = Point<'a>> + 'a {
        let (mut number, mut histogram, mut exponential, mut summary) =
            (&[][..], &[][..], &[][..], &[][..]);
        match self.points {
            Points::Number(p) => number = p,
            Points::Histogram(p) => histogram = p,
            Points::ExponentialHistogram(p) => exponential = p,
            Points::Summary(p) => summary = p,
        }
        number
            .iter()
            .map(Point::Number)
            .chain(histogram.iter().map(Point::Histogram))
            .chain(exponential.iter().map(Point::ExponentialHistogram))
            .chain(summary.iter().map(Point::Summary))
    }
}

impl<'a> Point<'a> {
    /// The point's attributes.
    pub fn attributes(&self) -> &'a [KeyValue] {
        match *self {
            Point::Number(p) => &p.attributes,
            Point::Histogram(p) => &p.attributes,
            Point::ExponentialHistogram(p) => &p.attributes,
            Point::Summary(p) => &p.attributes,
        }
    }

    /// The point's `time_unix_nano`.
    pub fn time_unix_nano(&self) -> u64 {
        match *self {
            Point::Number(p) => p.time_unix_nano,
            Point::Histogram(p) => p.time_unix_nano,
            Point::ExponentialHistogram(p) => p.time_unix_nano,
            Point::Summary(p) => p.time_unix_nano,
        }
    }
}

/// Moves the points of `source` to the end of `target` when both are of the same kind
/// ([`DataView::same_kind`]); otherwise hands `source` back.
pub fn append_points(target: &mut metric::Data, source: metric::Data) -> Result<(), metric::Data> {
    use metric::Data as D;
    if !DataView::of(target).same_kind(&DataView::of(&source)) {
        return Err(source);
    }
    match (target, source) {
        (D::Gauge(t), D::Gauge(s)) => t.data_points.extend(s.data_points),
        (D::Sum(t), D::Sum(s)) => t.data_points.extend(s.data_points),
        (D::Histogram(t), D::Histogram(s)) => t.data_points.extend(s.data_points),
        (D::ExponentialHistogram(t), D::ExponentialHistogram(s)) => {
            t.data_points.extend(s.data_points)
        }
        (D::Summary(t), D::Summary(s)) => t.data_points.extend(s.data_points),
        (_, source) => return Err(source),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metrics::v1::{Gauge, Sum};

    fn sum(monotonic: bool, times: &[u64]) -> metric::Data {
        metric::Data::Sum(Sum {
            data_points: times
                .iter()
                .map(|&t| NumberDataPoint {
                    time_unix_nano: t,
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: 1,
            is_monotonic: monotonic,
        })
    }

    #[test]
    fn views_name_the_kind_and_list_the_points() {
        let data = sum(true, &[3, 9, 4]);
        let view = DataView::of(&data);
        assert_eq!((view.json_name, view.kind), ("sum", "counter"));
        assert_eq!((view.temporality, view.is_monotonic), (Some(1), Some(true)));
        let times: Vec<u64> = view.points().map(|p| p.time_unix_nano()).collect();
        assert_eq!(times, [3, 9, 4]);
        assert_eq!(DataView::of(&sum(false, &[])).kind, "updown");
    }

    #[test]
    fn points_join_only_their_own_kind() {
        let mut target = sum(true, &[1]);
        append_points(&mut target, sum(true, &[2])).unwrap();
        assert_eq!(DataView::of(&target).points().count(), 2);
        assert!(append_points(&mut target, sum(false, &[3])).is_err());
        let gauge = metric::Data::Gauge(Gauge::default());
        assert!(append_points(&mut target, gauge).is_err());
        assert_eq!(DataView::of(&target).points().count(), 2);
    }
}
