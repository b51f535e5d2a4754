import { useMemo, useState } from "react";

import { formatNumber } from "../common/format";
import { HorizontalBars, ValueLine } from "./charts";
import {
  columnCards, sortColumns, visibleCharacter, type ColumnCard, type SortDirection, type StatsSortKey,
} from "./mapping";
import type { StatsDocument } from "./types";

const TABLE_COLUMNS: { key: StatsSortKey; label: string }[] = [
  { key: "name", label: "Column" }, { key: "type", label: "Type" }, { key: "count", label: "Values" },
  { key: "nulls", label: "Nulls" }, { key: "distinct", label: "Distinct" }, { key: "min", label: "Min" },
  { key: "max", label: "Max" }, { key: "mean", label: "Mean" }, { key: "stddev", label: "Std dev" },
];

function shown(value: number | string | null): string {
  return typeof value === "number" ? formatNumber(value) : value ?? "–";
}

function ColumnCardView({ card }: { card: ColumnCard }) {
  const nullPercent = Math.round(card.nullFraction * 1000) / 10;
  return (
    <article className="card column-card" data-testid={`column-card-${card.name}`} aria-labelledby={`col-${card.name}`}>
      <header>
        <h3 id={`col-${card.name}`}>{card.name}</h3>
        <span className="badge">{card.type}</span>
        {card.formats.map((format) => <span key={format} className="badge subtle">{format}</span>)}
      </header>
      {card.jsonTypes.length > 1 && (
        <p className="mixed-types" data-testid={`json-types-${card.name}`}>
          Mixed JSON types: {card.jsonTypes.map(([kind, count]) => `${kind} ${formatNumber(count)}`).join(", ")}
        </p>
      )}
      <div className="null-bar-label">Nulls: {formatNumber(card.nulls)} of {formatNumber(card.rows)} ({nullPercent}%)</div>
      <div className="null-bar" role="img" aria-label={`${nullPercent}% nulls`}>
        <div style={{ width: `${nullPercent}%` }} />
      </div>
      <dl className="facts">
        <dt>Min</dt><dd>{shown(card.min)}</dd>
        <dt>Max</dt><dd>{shown(card.max)}</dd>
        <dt>Mean</dt><dd>{shown(card.mean)}</dd>
        <dt>Std dev</dt><dd>{shown(card.stddev)}</dd>
        <dt>Distinct</dt><dd>{card.distinct === null ? "–" : `≈ ${formatNumber(card.distinct)}`}</dd>
      </dl>
      {card.distribution.length > 1 && (
        <>
          <h4>Distribution (quantiles)</h4>
          <ValueLine data={card.distribution} x="label" y="value" yName={card.name}
            summary={`Quantiles of ${card.name}: ${card.distribution.map((p) => `${p.label} ${formatNumber(p.value)}`).join(", ")}`} />
        </>
      )}
      {card.top.length > 0 && (
        <>
          <h4>Top values</h4>
          <HorizontalBars data={card.top} category="value" value="count" valueName="rows"
            summary={`Most frequent values of ${card.name}: ${card.top.map((t) => `${t.value} ${t.count}`).join(", ")}`} />
        </>
      )}
    </article>
  );
}

function StatsTable({ cards }: { cards: ColumnCard[] }) {
  const [sort, setSort] = useState<{ key: StatsSortKey; direction: SortDirection }>({ key: "name", direction: "ascending" });
  const rows = useMemo(() => sortColumns(cards, sort.key, sort.direction), [cards, sort]);
  const toggle = (key: StatsSortKey) => setSort((old) => ({
    key, direction: old.key === key && old.direction === "ascending" ? "descending" : "ascending",
  }));
  return (
    <div className="table-wrap">
      <table data-testid="stats-table">
        <thead>
          <tr>
            {TABLE_COLUMNS.map((column) => (
              <th key={column.key} scope="col" aria-sort={sort.key === column.key ? sort.direction : "none"}>
                <button type="button" className="sort" onClick={() => toggle(column.key)}
                  data-testid={`stats-sort-${column.key}`}>
                  {column.label}
                  <span aria-hidden="true">{sort.key === column.key ? (sort.direction === "ascending" ? " ▲" : " ▼") : ""}</span>
                </button>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((card) => (
            <tr key={card.name}>
              <th scope="row">{card.name}</th>
              <td>{card.type}</td>
              <td>{formatNumber(card.count)}</td>
              <td>{formatNumber(card.nulls)}</td>
              <td>{card.distinct === null ? "–" : formatNumber(card.distinct)}</td>
              <td>{shown(card.min)}</td>
              <td>{shown(card.max)}</td>
              <td>{shown(card.mean)}</td>
              <td>{shown(card.stddev)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function StatsResult({ document }: { document: StatsDocument }) {
  const cards = useMemo(() => columnCards(document), [document]);
  const [asTable, setAsTable] = useState(false);
  return (
    <section aria-label="Column statistics">
      <div className="section-head">
        <p>{formatNumber(document.result.rows)} rows, {cards.length} columns</p>
        <button type="button" aria-pressed={asTable} data-testid="stats-view-toggle" onClick={() => setAsTable(!asTable)}>
          {asTable ? "Show cards" : "Show table"}
        </button>
      </div>
      {asTable ? <StatsTable cards={cards} /> : (
        <div className="card-grid">
          {cards.map((card) => <ColumnCardView key={card.name} card={card} />)}
        </div>
      )}
      {document.result.badRows && document.result.badRows.total > 0 && (
        <>
          <h3>Bad rows: {formatNumber(document.result.badRows.total)}
            {document.result.badRows.rows.length < document.result.badRows.total &&
              ` (first ${formatNumber(document.result.badRows.rows.length)} shown)`}</h3>
          <div className="table-wrap">
            <table data-testid="stats-bad-rows">
              <thead><tr><th scope="col">File</th><th scope="col">Line</th><th scope="col">Reason</th></tr></thead>
              <tbody>
                {document.result.badRows.rows.map((row) => (
                  <tr key={`${row.path}:${row.line}`}>
                    <td>{row.path}</td>
                    <td>{row.line ?? "–"}</td>
                    <td>{row.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {document.result.dialects && document.result.dialects.length > 0 && (
        <>
          <h3>Dialects sniffed: {formatNumber(document.result.dialects.length)} files</h3>
          <div className="table-wrap">
            <table data-testid="stats-dialects">
              <thead><tr><th scope="col">File</th><th scope="col">Delimiter</th><th scope="col">Quote</th><th scope="col">Header rows</th></tr></thead>
              <tbody>
                {document.result.dialects.map((dialect) => (
                  <tr key={dialect.path}>
                    <td>{dialect.path}</td>
                    <td><code>{visibleCharacter(dialect.delimiter)}</code></td>
                    <td>{dialect.quote ? <code>{dialect.quote}</code> : "none"}</td>
                    <td>{dialect.headerRows}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {document.checks && (
        <>
          <h3>Data-quality checks: {document.checks.passed ? "passed" : "failed"}</h3>
          <div className="table-wrap">
            <table data-testid="stats-checks">
              <thead><tr><th scope="col">Rule</th><th scope="col">Column</th><th scope="col">Severity</th><th scope="col">Outcome</th><th scope="col">Observed</th></tr></thead>
              <tbody>
                {document.checks.results.map((check, index) => (
                  <tr key={index}>
                    <td>{check.rule}</td>
                    <td>{check.column ?? "–"}</td>
                    <td>{check.severity}</td>
                    <td className={check.passed ? "ok" : "bad"}>{check.passed ? "passed" : "failed"}</td>
                    <td><code>{JSON.stringify(check.observed)}</code></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
