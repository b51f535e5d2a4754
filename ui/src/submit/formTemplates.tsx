// rjsf's default markup, made readable without Bootstrap: buttons with words instead of
// icon-font glyphs, and a visible label on the selects that choose between schema options.
import { getDefaultRegistry } from "@rjsf/core";
import { TranslatableString, type IconButtonProps, type RegistryWidgetsType, type TemplatesType, type WidgetProps } from "@rjsf/utils";

function textButton(text: TranslatableString, style = "") {
  return function TextButton({ registry, uiSchema: _uiSchema, iconType: _iconType, icon: _icon, className, ...rest }: IconButtonProps) {
    const label = registry.translateString(text);
    return <button type="button" {...rest} className={`${className ?? ""} ${style}`.trim()} title={label}>{label}</button>;
  };
}

export const buttonTemplates: Partial<TemplatesType["ButtonTemplates"]> = {
  AddButton: textButton(TranslatableString.AddItemButton),
  CopyButton: textButton(TranslatableString.CopyButton),
  MoveDownButton: textButton(TranslatableString.MoveDownButton),
  MoveUpButton: textButton(TranslatableString.MoveUpButton),
  RemoveButton: textButton(TranslatableString.RemoveButton, "danger-text"),
  ClearButton: textButton(TranslatableString.ClearButton),
};

const DefaultSelect = getDefaultRegistry().widgets.SelectWidget;

/** The select rjsf puts above a oneOf/anyOf field comes without a label: it gets one. */
function LabelledSelect(props: WidgetProps) {
  if (!props.hideLabel) return <DefaultSelect {...props} />;
  return (
    <div className="option-select">
      <label htmlFor={props.id} className="control-label">{props.label}: kind</label>
      <DefaultSelect {...props} />
    </div>
  );
}

export const widgets: RegistryWidgetsType = { SelectWidget: LabelledSelect };
