import { ChecksumResult, ConvertResult, CountResult, GrepResult } from "./OtherResults";
import { StatsResult } from "./StatsResult";
import type { ResultDocument } from "./types";

interface Props {
  document: ResultDocument;
  /** spec.operation.grep.ignoreCase: how the matches were found, for highlighting them. */
  ignoreCase?: boolean;
}

export function ResultsView({ document, ignoreCase = false }: Props) {
  return (
    <div data-testid="job-results" className="results">
      {(() => {
        switch (document.operation) {
          case "stats": return <StatsResult document={document} />;
          case "count": return <CountResult document={document} />;
          case "checksum": return <ChecksumResult document={document} />;
          case "grep": return <GrepResult document={document} ignoreCase={ignoreCase} />;
          case "convert": return <ConvertResult document={document} />;
        }
      })()}
    </div>
  );
}
