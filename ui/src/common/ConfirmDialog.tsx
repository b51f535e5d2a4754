import { useEffect, useRef } from "react";

interface Props {
  title: string;
  message: string;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}

/** A modal <dialog>: the browser traps focus and closes it on Escape. */
export function ConfirmDialog({ title, message, confirmLabel, onConfirm, onCancel }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open && typeof element.showModal === "function") element.showModal();
    return () => element?.close?.();
  }, []);

  return (
    <dialog ref={dialog} className="dialog" data-testid="confirm-dialog" aria-labelledby="confirm-title"
      aria-describedby="confirm-message" onCancel={(event) => { event.preventDefault(); onCancel(); }}>
      <h2 id="confirm-title">{title}</h2>
      <p id="confirm-message">{message}</p>
      <div className="actions">
        <button type="button" onClick={onCancel} autoFocus>Keep it</button>
        <button type="button" className="danger" data-testid="confirm-yes" onClick={onConfirm}>{confirmLabel}</button>
      </div>
    </dialog>
  );
}
