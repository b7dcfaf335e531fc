import { lazy, Suspense } from 'react';

// chart.js is loaded with the first chart drawn, in its own chunk, so pages without charts do not
// carry it.
const ChartCanvas = lazy(() => import('./ChartCanvas.tsx'));

export interface Series {
  label: string;
  data: number[];
}

export interface ChartProps {
  type?: 'bar' | 'line';
  labels: string[];
  series: Series[];
  /** Values are percentages (0–100): the axis says so. */
  percent?: boolean;
  /** The accessible name of the chart. */
  label: string;
  horizontal?: boolean;
}

/** A bar or line chart of a few series over the same labels. */
export function Chart(props: ChartProps) {
  return (
    <Suspense fallback={<div className="report-chart" />}>
      <ChartCanvas {...props} />
    </Suspense>
  );
}
