import { Bar, BarChart, CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import { formatNumber } from "../common/format";

// Colours with enough contrast on the white cards.
export const CHART_COLOR = "#1d4ed8";
export const CHART_ACCENT = "#b45309";

interface BarsProps {
  data: object[];
  /** Keys of the data's items: the bar's name and its length. */
  category: string;
  value: string;
  valueName: string;
  /** Described to assistive technology, which cannot read the chart itself. */
  summary: string;
  height?: number;
  formatValue?: (value: number) => string;
}

/** Horizontal bars: one per category, long labels stay readable. */
export function HorizontalBars(
  { data, category, value, valueName, summary, height, formatValue = (v) => formatNumber(v) }: BarsProps,
) {
  return (
    <figure className="chart" aria-label={summary} role="img">
      <ResponsiveContainer width="100%" height={height ?? Math.max(120, data.length * 28 + 40)}>
        <BarChart data={data} layout="vertical" margin={{ left: 8, right: 16, top: 4, bottom: 4 }}>
          <CartesianGrid strokeDasharray="3 3" horizontal={false} />
          <XAxis type="number" tickFormatter={formatValue} allowDecimals={false} />
          <YAxis type="category" dataKey={category} width={120} tick={{ fontSize: 12 }} />
          <Tooltip formatter={(shown) => [formatValue(Number(shown)), valueName]} />
          <Bar dataKey={value} name={valueName} fill={CHART_COLOR} isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </figure>
  );
}

interface LineProps {
  data: object[];
  x: string;
  y: string;
  yName: string;
  summary: string;
}

export function ValueLine({ data, x, y, yName, summary }: LineProps) {
  return (
    <figure className="chart" aria-label={summary} role="img">
      <ResponsiveContainer width="100%" height={140}>
        <LineChart data={data} margin={{ left: 8, right: 16, top: 8, bottom: 4 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey={x} tick={{ fontSize: 12 }} />
          <YAxis tickFormatter={(v) => formatNumber(Number(v), 3)} width={56} tick={{ fontSize: 12 }} />
          <Tooltip formatter={(shown) => [formatNumber(Number(shown)), yName]} />
          <Line dataKey={y} name={yName} stroke={CHART_ACCENT} strokeWidth={2} dot isAnimationActive={false} />
        </LineChart>
      </ResponsiveContainer>
    </figure>
  );
}
