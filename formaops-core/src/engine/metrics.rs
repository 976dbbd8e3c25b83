//! The engine's metrics reads: the report and the time series, both from the rollups (see
//! [`crate::metrics`]).

use super::FormaOps;
use crate::error::Result;
use crate::ids::UserId;
use crate::metrics::{MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};

impl FormaOps {
    /// Aggregates of the user's executions matching `query`, from the rollups (see [`crate::metrics`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) as [`MetricsQuery::check`]; store errors.
    pub async fn metrics(&self, user: UserId, query: MetricsQuery) -> Result<MetricsReport> {
        query.check()?;
        self.inner.store.metrics(user, &query).await
    }

    /// A series of the user's final executions from the rollups, window by [`MetricsSeriesQuery::window`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) as `window`; store errors.
    pub async fn metrics_series(&self, user: UserId, mut query: MetricsSeriesQuery) -> Result<MetricsSeries> {
        (query.since, query.until) = query.window(self.inner.clock.now()).map(|(s, u)| (Some(s), Some(u)))?;
        self.inner.store.metrics_series(user, &query).await
    }
}
