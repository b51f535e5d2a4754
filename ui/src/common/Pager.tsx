interface Props {
  label: string;
  offset: number;
  limit: number;
  total: number;
  onOffset: (offset: number) => void;
  testIdPrefix: string;
}

/** Previous/next over an offset-paged list (errors, logs). */
export function Pager({ label, offset, limit, total, onOffset, testIdPrefix }: Props) {
  const last = Math.min(offset + limit, total);
  return (
    <div className="pager" role="group" aria-label={`${label} pages`}>
      <button type="button" disabled={offset === 0} data-testid={`${testIdPrefix}-prev`}
        onClick={() => onOffset(Math.max(0, offset - limit))}>Previous</button>
      <span aria-live="polite">{total === 0 ? "none" : `${offset + 1}–${last} of ${total}`}</span>
      <button type="button" disabled={last >= total} data-testid={`${testIdPrefix}-next`}
        onClick={() => onOffset(offset + limit)}>Next</button>
    </div>
  );
}
