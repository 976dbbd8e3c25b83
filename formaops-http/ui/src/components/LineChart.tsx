// A time-series chart drawn with uPlot (canvas): one line per series over bucket start times.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface LineSeries {
  label: string;
  color: string;
  /** One value per time; `null` is a gap (no data in that bucket). */
  values: (number | null)[];
}

export interface LineChartProps {
  title: string;
  /** Bucket start times, in seconds since the Unix epoch (uPlot's time unit), ascending. */
  times: number[];
  series: LineSeries[];
  unit: string;
  testId: string;
  /** Draw each series as stacked-free steps (counts per bucket) instead of lines. */
  steps?: boolean;
}

export function LineChart({ title, times, series, unit, testId, steps }: LineChartProps) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const path = steps ? uPlot.paths.stepped?.({ align: 1 }) : undefined;
    const opts: uPlot.Options = {
      title,
      width: Math.max(Math.min(el.clientWidth, 560), 300),
      height: 240,
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
      // Small values (a cost in USD per bucket) keep two significant digits instead of rounding to 0.
      axes: [{}, { label: unit, size: 64, values: (_u, splits) => splits.map((v) => (v !== 0 && Math.abs(v) < 1 ? v.toPrecision(2) : String(v))) }],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          paths: path,
          spanGaps: false,
          points: { show: times.length <= 60, size: 4 },
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${Math.round(v * 100) / 100}`),
        })),
      ],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    };
    const plot = new uPlot(opts, [times, ...series.map((s) => s.values)], el);
    el.dataset.drawn = 'true';
    return () => {
      plot.destroy();
      delete el.dataset.drawn;
    };
  }, [title, times, series, unit, steps]);
  return <div ref={host} className="chart" data-testid={testId} />;
}
