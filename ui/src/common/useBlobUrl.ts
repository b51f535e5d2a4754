import { useEffect, useState } from "react";

/** An object URL for `text` (for download links), revoked when the text changes or on unmount. */
export function useBlobUrl(text: string | null, type: string): string | undefined {
  const [url, setUrl] = useState<string>();
  useEffect(() => {
    if (text === null) {
      setUrl(undefined);
      return;
    }
    const created = URL.createObjectURL(new Blob([text], { type }));
    setUrl(created);
    return () => URL.revokeObjectURL(created);
  }, [text, type]);
  return url;
}
