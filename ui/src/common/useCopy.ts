import { useState } from "react";

/** Copy text to the clipboard; the message says whether it worked (browsers may refuse). */
export function useCopy(text: string): [string | null, () => Promise<void>] {
  const [message, setMessage] = useState<string | null>(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setMessage("Copied.");
    } catch {
      setMessage("The browser refused the clipboard: select the text and copy it.");
    }
  }
  return [message, copy];
}
