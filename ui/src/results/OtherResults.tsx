import { useMemo } from "react";

import { formatBytes, formatNumber } from "../common/format";
import { useBlobUrl } from "../common/useBlobUrl";
import { useCopy } from "../common/useCopy";
import { HorizontalBars } from "./charts";
import {
  checksumManifest, convertOutputs, countTotals, highlight, largestFiles, manifestFileName, matchesPerFile,
} from "./mapping";
import type { ChecksumDocument, ConvertDocument, CountDocument, GrepDocument } from "./types";

export function CountResult({ document }: { document: CountDocument }) {
  const totals = countTotals(document);
  const largest = useMemo(() => largestFiles(document), [document]);
  return (
    <section aria-label="Counts">
      <dl className="totals">
        <div><dt>Files</dt><dd data-testid="count-files">{formatNumber(totals.files)}</dd></div>
        <div><dt>Lines</dt><dd data-testid="count-lines">{formatNumber(totals.lines)}</dd></div>
        <div><dt>Words</dt><dd data-testid="count-words">{formatNumber(totals.words)}</dd></div>
        <div><dt>Bytes</dt><dd data-testid="count-bytes">{formatBytes(totals.bytes)}</dd></div>
      </dl>
      <h3>Largest files</h3>
      <HorizontalBars data={largest} category="label" value="bytes" valueName="bytes" formatValue={formatBytes}
        summary={`Largest files by size: ${largest.map((file) => `${file.label} ${formatBytes(file.bytes)}`).join(", ")}`} />
      <div className="table-wrap">
        <table data-testid="count-table">
          <thead><tr><th scope="col">File</th><th scope="col">Lines</th><th scope="col">Words</th><th scope="col">Bytes</th></tr></thead>
          <tbody>
            {largest.map((file) => (
              <tr key={file.path}>
                <th scope="row" className="path">{file.path}</th>
                <td>{formatNumber(file.lines)}</td>
                <td>{formatNumber(file.words)}</td>
                <td>{formatBytes(file.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function ChecksumResult({ document }: { document: ChecksumDocument }) {
  const manifest = useMemo(() => checksumManifest(document), [document]);
  const fileName = manifestFileName(document);
  const [copied, copy] = useCopy(manifest);
  const download = useBlobUrl(manifest, "text/plain");

  return (
    <section aria-label="Checksums">
      <p>{document.result.files.length} files, {document.result.algorithm}
        {document.result.manifest && <> — stored as <code>{document.result.manifest}</code></>}</p>
      <div className="actions">
        <button type="button" data-testid="copy-manifest" onClick={copy}>Copy manifest</button>
        <a className="button" href={download} download={fileName} data-testid="download-manifest">Download {fileName}</a>
        <span role="status">{copied}</span>
      </div>
      <pre className="manifest" data-testid="checksum-manifest" tabIndex={0} aria-label={`${fileName} contents`}>{manifest}</pre>
    </section>
  );
}

export function GrepResult({ document, ignoreCase }: { document: GrepDocument; ignoreCase: boolean }) {
  const perFile = useMemo(() => matchesPerFile(document), [document]);
  const { pattern } = document.result;
  return (
    <section aria-label="Matches">
      <p>
        <code>{pattern}</code>: {formatNumber(document.result.matches)} matching lines in{" "}
        {formatNumber(document.result.files_with_matches)} files
      </p>
      <HorizontalBars data={perFile} category="label" value="matches" valueName="matching lines"
        summary={`Matching lines per file: ${perFile.map((file) => `${file.label} ${file.matches}`).join(", ")}`} />
      {document.result.files.map((file) => (
        <details key={file.path} className="grep-file" data-testid="grep-file">
          <summary><span className="path">{file.path}</span> — {formatNumber(file.matches)} matches
            {file.lines.length < file.matches && ` (first ${file.lines.length} shown)`}</summary>
          <ol className="grep-lines">
            {file.lines.map((line) => (
              <li key={line.line}>
                <span className="line-number">{line.line}</span>
                <code>
                  {highlight(line.text, pattern, ignoreCase).map((segment, index) =>
                    segment.match ? <mark key={index}>{segment.text}</mark> : <span key={index}>{segment.text}</span>)}
                </code>
              </li>
            ))}
          </ol>
        </details>
      ))}
    </section>
  );
}

export function ConvertResult({ document }: { document: ConvertDocument }) {
  const outputs = useMemo(() => convertOutputs(document), [document]);
  return (
    <section aria-label="Converted files">
      <p>{outputs.length} {document.result.format} files ({document.result.compression}),{" "}
        {formatNumber(document.result.rows)} rows</p>
      <div className="table-wrap">
        <table data-testid="convert-outputs">
          <thead><tr><th scope="col">Source</th><th scope="col">Output</th><th scope="col">Rows</th></tr></thead>
          <tbody>
            {outputs.map((output) => (
              <tr key={output.path}>
                <td className="path">{output.source}</td>
                <td className="path">{output.path}</td>
                <td>{formatNumber(output.rows)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Schema</h3>
      <div className="table-wrap">
        <table data-testid="convert-schema">
          <thead><tr><th scope="col">Column</th><th scope="col">Arrow type</th></tr></thead>
          <tbody>
            {document.result.schema.map((field) => (
              <tr key={field.name}><th scope="row">{field.name}</th><td><code>{field.type}</code></td></tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
