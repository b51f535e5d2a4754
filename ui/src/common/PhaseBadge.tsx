import type { Phase } from "../api/types";

interface Props {
  phase: Phase | null | undefined;
  testId: string;
}

export function PhaseBadge({ phase, testId }: Props) {
  const shown = phase ?? "Pending";
  return <span className={`badge phase-${shown.toLowerCase()}`} data-testid={testId}>{shown}</span>;
}
