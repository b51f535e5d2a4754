interface Props {
  percent: number | null | undefined;
  label: string;
  testId: string;
}

export function ProgressBar({ percent, label, testId }: Props) {
  const value = Math.max(0, Math.min(100, percent ?? 0));
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100}
      aria-valuenow={value} aria-valuetext={percent === null || percent === undefined ? "not started" : `${value}%`}
      data-testid={testId}>
      <div className="progress-track"><div className="progress-fill" style={{ width: `${value}%` }} /></div>
      <span className="progress-text">{value}%</span>
    </div>
  );
}
