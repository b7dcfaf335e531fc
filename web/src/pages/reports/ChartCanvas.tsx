import {
  BarController,
  BarElement,
  CategoryScale,
  Chart as ChartJs,
  type ChartType,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from 'chart.js';
import { useEffect, useRef } from 'react';
import type { ChartProps } from './Chart.tsx';

// Only the parts the reports draw (bars and lines on category × linear axes) are registered, so
// the bundle carries those and not all of chart.js.
ChartJs.register(
  BarController,
  BarElement,
  LineController,
  LineElement,
  PointElement,
  CategoryScale,
  LinearScale,
  Legend,
  Tooltip,
);

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

/** The canvas behind Chart (loaded on first use, with chart.js). */
export default function ChartCanvas({
  type = 'bar',
  labels,
  series,
  percent,
  label,
  horizontal,
}: ChartProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<ChartJs | null>(null);
  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new ChartJs(canvas.current, {
      type: type as ChartType,
      data: { labels: [], datasets: [] },
    });
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, [type]);
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.data = {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.data,
        backgroundColor: COLORS[i % COLORS.length],
        borderColor: COLORS[i % COLORS.length],
        tension: 0.2,
      })),
    };
    c.options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      indexAxis: horizontal ? 'y' : 'x',
      plugins: { legend: { position: 'bottom' } },
      scales: {
        [horizontal ? 'x' : 'y']: {
          beginAtZero: true,
          // Counts are whole numbers: no 0.5 ticks on a small chart.
          ticks: percent ? { callback: (v: string | number) => `${v}%` } : { precision: 0 },
          ...(percent ? { max: 100 } : {}),
        },
      },
    };
    c.update();
  }, [labels, series, percent, horizontal]);
  return (
    <div className="report-chart" data-testid="report-chart">
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}
