// A bar chart drawn with uPlot (canvas): one bar per category.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface BarChartProps {
  title: string;
  labels: string[];
  values: (number | null)[];
  unit: string;
  color: string;
  testId: string;
}

export function BarChart({ title, labels, values, unit, color, testId }: BarChartProps) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const xs = labels.map((_, i) => i);
    const bars = uPlot.paths.bars?.({ size: [0.6, 80] });
    const max = Math.max(0, ...values.map((v) => v ?? 0));
    const opts: uPlot.Options = {
      title,
      width: Math.max(Math.min(el.clientWidth, 560), 300),
      height: 240,
      scales: {
        x: { time: false, range: [-0.5, labels.length - 0.5] },
        y: { range: [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        { splits: () => xs, values: (_u, splits) => splits.map((s) => labels[s] ?? '') },
        { label: unit, size: 64 },
      ],
      series: [
        { label: 'category', value: (_u, v) => (v === null ? '' : (labels[v] ?? '')) },
        {
          label: unit,
          stroke: color,
          fill: `${color}cc`,
          width: 1,
          paths: bars,
          points: { show: false },
          value: (_u, v) => (v === null ? '—' : `${Math.round(v * 100) / 100}`),
        },
      ],
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
    };
    const plot = new uPlot(opts, [xs, values], el);
    el.dataset.drawn = 'true';
    return () => {
      plot.destroy();
      delete el.dataset.drawn;
    };
  }, [title, labels, values, unit, color]);
  return <div ref={host} className="chart" data-testid={testId} />;
}
