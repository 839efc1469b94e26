/** Replaces `{{ variables.name }}` with the variable's value; an unset variable renders as empty. */
export function renderTemplate(template: string, variables: Readonly<Record<string, unknown>>): string {
  return template.replace(/\{\{\s*variables\.([\w.-]+)\s*\}\}/g, (_, name: string) => {
    const value = variables[name];
    return value === undefined || value === null ? '' : String(value);
  });
}
